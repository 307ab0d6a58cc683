package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hibiken/asynq"
)

// handler does what the -control file says for the task's type, else what the payload asks.
type handler struct{ control string }

func (h handler) action(t *asynq.Task) payload {
	var p payload
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		p.Do = "succeed"
	}
	if h.control == "" {
		return p
	}
	data, err := os.ReadFile(h.control)
	if err != nil {
		return p // no control file: the payload decides
	}
	var byType map[string]string
	if json.Unmarshal(data, &byType) == nil {
		if do, ok := byType[t.Type()]; ok {
			return payload{Do: do}
		}
	}
	return p
}

func (h handler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	p := h.action(t)
	switch p.Do {
	case "", "succeed":
		return nil
	case "fail":
		return fmt.Errorf("asynqpeer: told to fail")
	case "panic":
		panic("asynqpeer: told to panic")
	case "block":
		var until <-chan time.Time
		if d, err := time.ParseDuration(p.For); err == nil && d > 0 {
			until = time.After(d)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-until:
			return nil
		}
	default:
		return fmt.Errorf("asynqpeer: unknown action %q", p.Do)
	}
}

// parseQueues reads "critical=6,default=3".
func parseQueues(s string) (map[string]int, error) {
	out := map[string]int{}
	for _, part := range strings.Split(s, ",") {
		name, prio, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			prio = "1"
		}
		n, err := strconv.Atoi(prio)
		if err != nil || name == "" {
			return nil, fmt.Errorf("bad -queues entry %q (want name=priority)", part)
		}
		out[name] = n
	}
	return out, nil
}

func worker(args []string) error {
	fs := flag.NewFlagSet("worker", flag.ExitOnError)
	redisOpt := redisFlag(fs)
	concurrency := fs.Int("concurrency", 4, "concurrency")
	queues := fs.String("queues", "default=1", "queues with priorities")
	strict := fs.Bool("strict", false, "strict priority")
	shutdown := fs.Duration("shutdown-timeout", 8*time.Second, "graceful shutdown timeout")
	groupGrace := fs.Duration("group-grace", time.Second, "group grace period (Asynq's minimum is 1s)")
	groupMax := fs.Int("group-max-size", 0, "aggregate a group once it holds this many tasks")
	retryDelay := fs.Duration("retry-delay", time.Second, "delay before a failed task's next attempt")
	delayedCheck := fs.Duration("delayed-check", 0, "how often scheduled/retry tasks are moved to pending (0 = Asynq's 5s)")
	control := fs.String("control", "", "JSON file: task type -> action, overriding the payload while present")
	_ = fs.Parse(args)

	qs, err := parseQueues(*queues)
	if err != nil {
		return err
	}
	delay := *retryDelay
	cfg := asynq.Config{
		Concurrency:              *concurrency,
		Queues:                   qs,
		StrictPriority:           *strict,
		ShutdownTimeout:          *shutdown,
		GroupGracePeriod:         *groupGrace,
		GroupMaxSize:             *groupMax,
		DelayedTaskCheckInterval: *delayedCheck,
		GroupAggregator: asynq.GroupAggregatorFunc(func(group string, tasks []*asynq.Task) *asynq.Task {
			return asynq.NewTask("peer:aggregated", []byte(fmt.Sprintf(`{"do":"succeed","n":%d}`, len(tasks))))
		}),
		// Asynq's default backs off for tens of seconds; tests want retries within their deadlines.
		RetryDelayFunc: func(n int, e error, t *asynq.Task) time.Duration { return delay },
		LogLevel:       asynq.WarnLevel,
	}
	srv := asynq.NewServer(redisOpt(), cfg)
	if err := srv.Start(handler{control: *control}); err != nil {
		return err
	}
	fmt.Println("ready")
	sigs := signals(syscall.SIGTERM, syscall.SIGINT, syscall.SIGTSTP)
	for sig := range sigs {
		if sig == syscall.SIGTSTP {
			srv.Stop() // stop taking new tasks; the heartbeat reports status "stopped"
			fmt.Println("stopping")
			continue
		}
		break
	}
	srv.Shutdown()
	fmt.Println("stopped")
	return nil
}
