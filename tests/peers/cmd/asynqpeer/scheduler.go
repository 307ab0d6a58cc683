package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"
)

// entryOptions reads "unique=1h,max-retry=3,timeout=30s" into Asynq options.
func entryOptions(s string) ([]asynq.Option, error) {
	var opts []asynq.Option
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		name, value, _ := strings.Cut(part, "=")
		switch name {
		case "unique", "timeout":
			d, err := time.ParseDuration(value)
			if err != nil {
				return nil, fmt.Errorf("bad %s %q", name, value)
			}
			if name == "unique" {
				opts = append(opts, asynq.Unique(d))
			} else {
				opts = append(opts, asynq.Timeout(d))
			}
		case "max-retry":
			n, err := strconv.Atoi(value)
			if err != nil {
				return nil, fmt.Errorf("bad max-retry %q", value)
			}
			opts = append(opts, asynq.MaxRetry(n))
		default:
			return nil, fmt.Errorf("unknown entry option %q (unique, timeout, max-retry)", name)
		}
	}
	return opts, nil
}

func scheduler(args []string) error {
	fs := flag.NewFlagSet("scheduler", flag.ExitOnError)
	redisOpt := redisFlag(fs)
	heartbeat := fs.Duration("heartbeat", 0, "heartbeat interval (0 = Asynq's 10s); entries expire after 2 heartbeats")
	var entries []string
	fs.Func("entry", "SPEC|TYPE|QUEUE[|do[|opt=v,...]] (repeatable)", func(s string) error { entries = append(entries, s); return nil })
	_ = fs.Parse(args)
	if len(entries) == 0 {
		return fmt.Errorf("scheduler needs at least one -entry")
	}
	sched := asynq.NewScheduler(redisOpt(), &asynq.SchedulerOpts{LogLevel: asynq.ErrorLevel, HeartbeatInterval: *heartbeat})
	for _, e := range entries {
		parts := strings.Split(e, "|")
		if len(parts) < 3 {
			return fmt.Errorf("bad -entry %q (want SPEC|TYPE|QUEUE[|do[|opt=v,...]])", e)
		}
		do := "succeed"
		if len(parts) > 3 && parts[3] != "" {
			do = parts[3]
		}
		opts := []asynq.Option{asynq.Queue(parts[2])}
		if len(parts) > 4 {
			more, err := entryOptions(parts[4])
			if err != nil {
				return fmt.Errorf("-entry %q: %w", e, err)
			}
			opts = append(opts, more...)
		}
		data, _ := json.Marshal(payload{Do: do})
		id, err := sched.Register(parts[0], asynq.NewTask(parts[1], data), opts...)
		if err != nil {
			return fmt.Errorf("register %q: %w", e, err)
		}
		fmt.Println("entry", id)
	}
	if err := sched.Start(); err != nil {
		return err
	}
	fmt.Println("ready")
	<-signals(stopSignals...)
	sched.Shutdown()
	fmt.Println("stopped")
	return nil
}

func pause(cmd string, args []string) error {
	fs := flag.NewFlagSet(cmd, flag.ExitOnError)
	redisOpt := redisFlag(fs)
	queue := fs.String("queue", "default", "queue")
	_ = fs.Parse(args)
	insp := asynq.NewInspector(redisOpt())
	defer insp.Close()
	if cmd == "pause" {
		return insp.PauseQueue(*queue)
	}
	return insp.UnpauseQueue(*queue)
}
