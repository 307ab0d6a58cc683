package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"
)

type payload struct {
	Do  string `json:"do"`
	For string `json:"for,omitempty"`
}

type counts struct {
	mu         sync.Mutex
	Enqueued   int `json:"enqueued"`
	Duplicates int `json:"duplicates"`
	Errors     int `json:"errors"`
}

func enqueue(args []string) error {
	fs := flag.NewFlagSet("enqueue", flag.ExitOnError)
	redisOpt := redisFlag(fs)
	queue := fs.String("queue", "default", "queue, or a comma-separated list of queues (-count tasks to each)")
	typ := fs.String("type", "peer:task", "task type")
	count := fs.Int("count", 1, "number of tasks (per round with -every)")
	do := fs.String("do", "succeed", "what the handler does: succeed, fail, block, panic")
	blockFor := fs.Duration("for", 0, "with -do block: how long (0 = until shutdown)")
	delay := fs.Duration("delay", 0, "process in (scheduled state)")
	maxRetry := fs.Int("max-retry", -1, "max retry (-1 = Asynq's default)")
	unique := fs.Duration("unique", 0, "uniqueness TTL")
	group := fs.String("group", "", "aggregation group")
	retention := fs.Duration("retention", 0, "keep completed tasks this long")
	timeout := fs.Duration("timeout", 0, "task timeout")
	parallel := fs.Int("parallel", 1, "enqueue from this many goroutines (one client)")
	every := fs.Duration("every", 0, "repeat: enqueue -count tasks every D until SIGTERM (a long-lived client)")
	_ = fs.Parse(args)

	body := payload{Do: *do}
	if *blockFor > 0 {
		body.For = blockFor.String()
	}
	data, err := json.Marshal(body)
	if err != nil {
		return err
	}
	var opts []asynq.Option
	if *delay > 0 {
		opts = append(opts, asynq.ProcessIn(*delay))
	}
	if *maxRetry >= 0 {
		opts = append(opts, asynq.MaxRetry(*maxRetry))
	}
	if *unique > 0 {
		opts = append(opts, asynq.Unique(*unique))
	}
	if *group != "" {
		opts = append(opts, asynq.Group(*group))
	}
	if *retention > 0 {
		opts = append(opts, asynq.Retention(*retention))
	}
	if *timeout > 0 {
		opts = append(opts, asynq.Timeout(*timeout))
	}
	// One client for the whole run: like an API process, it registers the queue in asynq:queues once.
	client := asynq.NewClient(redisOpt())
	defer client.Close()
	var total counts
	queues := strings.Split(*queue, ",")
	round := func() error {
		for _, q := range queues {
			withQueue := append([]asynq.Option{asynq.Queue(q)}, opts...)
			if err := enqueueRound(client, asynq.NewTask(*typ, data), withQueue, *count, *parallel, &total); err != nil {
				return err
			}
		}
		return nil
	}
	if *every <= 0 {
		if err := round(); err != nil {
			return err
		}
		return json.NewEncoder(os.Stdout).Encode(&total)
	}
	stop := signals(stopSignals...)
	ticker := time.NewTicker(*every)
	defer ticker.Stop()
	_ = round() // a Redis that is down or restarting is counted in Errors, the loop goes on
	fmt.Println("ready")
	for {
		select {
		case <-stop:
			return json.NewEncoder(os.Stdout).Encode(&total)
		case <-ticker.C:
			_ = round()
		}
	}
}

// enqueueRound enqueues n tasks from `parallel` goroutines; unique duplicates are counted, not errors.
func enqueueRound(client *asynq.Client, task *asynq.Task, opts []asynq.Option, n, parallel int, total *counts) error {
	if parallel < 1 {
		parallel = 1
	}
	var wg sync.WaitGroup
	errs := make(chan error, parallel)
	for w := 0; w < parallel; w++ {
		share := n / parallel
		if w < n%parallel {
			share++
		}
		wg.Add(1)
		go func(share int) {
			defer wg.Done()
			for i := 0; i < share; i++ {
				_, err := client.Enqueue(task, opts...)
				total.mu.Lock()
				switch {
				case errors.Is(err, asynq.ErrDuplicateTask), errors.Is(err, asynq.ErrTaskIDConflict):
					total.Duplicates++
				case err != nil:
					total.Errors++
				default:
					total.Enqueued++
				}
				total.mu.Unlock()
				if err != nil && !errors.Is(err, asynq.ErrDuplicateTask) && !errors.Is(err, asynq.ErrTaskIDConflict) {
					errs <- fmt.Errorf("enqueue: %w", err)
					return
				}
			}
		}(share)
	}
	wg.Wait()
	close(errs)
	return <-errs
}
