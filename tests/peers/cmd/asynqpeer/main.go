// Command asynqpeer is the tests' real Asynq: it enqueues tasks, runs a worker server and a scheduler,
// pauses queues, and prints Asynq's own Inspector view as JSON. The exporter reads Asynq's state from
// Redis on its own; this peer writes that state with Asynq itself, and its Inspector view is the truth
// the exporter's metrics are compared with.
//
//	asynqpeer enqueue   -redis ADDR -queue Q [-type T] [-count N] [-do succeed|fail|block|panic]
//	                    [-delay D] [-max-retry N] [-unique D] [-group G] [-retention D]
//	asynqpeer worker    -redis ADDR [-concurrency N] [-queues q=prio,...] [-strict] [-shutdown-timeout D]
//	                    [-group-grace D] [-group-max-size N]
//	asynqpeer scheduler -redis ADDR -entry 'SPEC|TYPE|QUEUE[|do]' ...
//	asynqpeer pause|unpause -redis ADDR -queue Q
//	asynqpeer inspect   -redis ADDR [-events N]
//
// A task's payload is JSON {"do": "succeed"|"fail"|"block"|"panic", "for": "2s"}; "block" waits until
// the worker shuts down (or "for" elapses). The worker prints "ready" once it runs; on SIGTERM or
// SIGINT it stops gracefully (Asynq's own Shutdown), SIGKILL leaves its leases and heartbeat behind.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hibiken/asynq"
)

func main() {
	if len(os.Args) < 2 {
		fail("usage: asynqpeer enqueue|worker|scheduler|pause|unpause|inspect [flags]")
	}
	cmd, args := os.Args[1], os.Args[2:]
	var err error
	switch cmd {
	case "enqueue":
		err = enqueue(args)
	case "worker":
		err = worker(args)
	case "scheduler":
		err = scheduler(args)
	case "pause", "unpause":
		err = pause(cmd, args)
	case "inspect":
		err = inspect(args)
	default:
		err = fmt.Errorf("unknown subcommand %q", cmd)
	}
	if err != nil {
		fail(err.Error())
	}
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "asynqpeer:", msg)
	os.Exit(2)
}

// redisFlag adds the -redis and -db flags every subcommand shares.
func redisFlag(fs *flag.FlagSet) func() asynq.RedisClientOpt {
	addr := fs.String("redis", "127.0.0.1:6379", "Redis address")
	db := fs.Int("db", 0, "Redis database")
	password := fs.String("password", os.Getenv("ASYNQPEER_REDIS_PASSWORD"), "Redis password")
	return func() asynq.RedisClientOpt { return asynq.RedisClientOpt{Addr: *addr, DB: *db, Password: *password} }
}

type payload struct {
	Do  string `json:"do"`
	For string `json:"for,omitempty"`
}

func enqueue(args []string) error {
	fs := flag.NewFlagSet("enqueue", flag.ExitOnError)
	redisOpt := redisFlag(fs)
	queue := fs.String("queue", "default", "queue")
	typ := fs.String("type", "peer:task", "task type")
	count := fs.Int("count", 1, "number of tasks")
	do := fs.String("do", "succeed", "what the handler does: succeed, fail, block, panic")
	blockFor := fs.Duration("for", 0, "with -do block: how long (0 = until shutdown)")
	delay := fs.Duration("delay", 0, "process in (scheduled state)")
	maxRetry := fs.Int("max-retry", -1, "max retry (-1 = Asynq's default)")
	unique := fs.Duration("unique", 0, "uniqueness TTL")
	group := fs.String("group", "", "aggregation group")
	retention := fs.Duration("retention", 0, "keep completed tasks this long")
	timeout := fs.Duration("timeout", 0, "task timeout")
	_ = fs.Parse(args)

	body := payload{Do: *do}
	if *blockFor > 0 {
		body.For = blockFor.String()
	}
	data, err := json.Marshal(body)
	if err != nil {
		return err
	}
	opts := []asynq.Option{asynq.Queue(*queue)}
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
	client := asynq.NewClient(redisOpt())
	defer client.Close()
	enqueued, duplicates := 0, 0
	for i := 0; i < *count; i++ {
		// Unique tasks are unique by type, queue and payload: a count > 1 of them enqueues one.
		_, err := client.Enqueue(asynq.NewTask(*typ, data), opts...)
		switch {
		case errors.Is(err, asynq.ErrDuplicateTask), errors.Is(err, asynq.ErrTaskIDConflict):
			duplicates++
		case err != nil:
			return fmt.Errorf("enqueue %d of %d: %w", i+1, *count, err)
		default:
			enqueued++
		}
	}
	return json.NewEncoder(os.Stdout).Encode(map[string]int{"enqueued": enqueued, "duplicates": duplicates})
}

// handle does what the task's payload asks.
func handle(ctx context.Context, t *asynq.Task) error {
	var p payload
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		p.Do = "succeed"
	}
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
	_ = fs.Parse(args)

	qs, err := parseQueues(*queues)
	if err != nil {
		return err
	}
	cfg := asynq.Config{
		Concurrency:      *concurrency,
		Queues:           qs,
		StrictPriority:   *strict,
		ShutdownTimeout:  *shutdown,
		GroupGracePeriod: *groupGrace,
		GroupMaxSize:     *groupMax,
		GroupAggregator: asynq.GroupAggregatorFunc(func(group string, tasks []*asynq.Task) *asynq.Task {
			return asynq.NewTask("peer:aggregated", []byte(fmt.Sprintf(`{"do":"succeed","n":%d}`, len(tasks))))
		}),
		// Asynq's default backs off for tens of seconds; tests want retries within their deadlines.
		RetryDelayFunc: func(n int, e error, t *asynq.Task) time.Duration { return time.Second },
		LogLevel:       asynq.WarnLevel,
	}
	srv := asynq.NewServer(redisOpt(), cfg)
	if err := srv.Start(asynq.HandlerFunc(handle)); err != nil {
		return err
	}
	fmt.Println("ready")
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	<-sigs
	srv.Shutdown()
	fmt.Println("stopped")
	return nil
}

func scheduler(args []string) error {
	fs := flag.NewFlagSet("scheduler", flag.ExitOnError)
	redisOpt := redisFlag(fs)
	var entries []string
	fs.Func("entry", "SPEC|TYPE|QUEUE[|do] (repeatable)", func(s string) error { entries = append(entries, s); return nil })
	_ = fs.Parse(args)
	if len(entries) == 0 {
		return fmt.Errorf("scheduler needs at least one -entry")
	}
	sched := asynq.NewScheduler(redisOpt(), &asynq.SchedulerOpts{LogLevel: asynq.WarnLevel})
	for _, e := range entries {
		parts := strings.Split(e, "|")
		if len(parts) < 3 {
			return fmt.Errorf("bad -entry %q (want SPEC|TYPE|QUEUE[|do])", e)
		}
		do := "succeed"
		if len(parts) > 3 {
			do = parts[3]
		}
		data, _ := json.Marshal(payload{Do: do})
		id, err := sched.Register(parts[0], asynq.NewTask(parts[1], data), asynq.Queue(parts[2]))
		if err != nil {
			return fmt.Errorf("register %q: %w", e, err)
		}
		fmt.Println("entry", id)
	}
	if err := sched.Start(); err != nil {
		return err
	}
	fmt.Println("ready")
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	<-sigs
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

// unix is a time as float seconds since the epoch, 0 for Go's zero time.
func unix(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixNano()) / 1e9
}

type queueView struct {
	Queue          string         `json:"queue"`
	Size           int            `json:"size"`
	Groups         int            `json:"groups"`
	LatencySeconds float64        `json:"latency_seconds"`
	States         map[string]int `json:"states"`
	Processed      int            `json:"processed"`
	Failed         int            `json:"failed"`
	ProcessedTotal int            `json:"processed_total"`
	FailedTotal    int            `json:"failed_total"`
	Paused         bool           `json:"paused"`
	MemoryUsage    int64          `json:"memory_usage_bytes"`
}

type workerView struct {
	TaskID   string  `json:"task_id"`
	TaskType string  `json:"task_type"`
	Queue    string  `json:"queue"`
	Started  float64 `json:"started"`
	Deadline float64 `json:"deadline"`
}

type serverView struct {
	ID             string         `json:"id"`
	Host           string         `json:"host"`
	PID            int            `json:"pid"`
	Concurrency    int            `json:"concurrency"`
	Queues         map[string]int `json:"queues"`
	StrictPriority bool           `json:"strict_priority"`
	Started        float64        `json:"started"`
	Status         string         `json:"status"`
	ActiveWorkers  []workerView   `json:"active_workers"`
}

type eventView struct {
	TaskID     string  `json:"task_id"`
	EnqueuedAt float64 `json:"enqueued_at"`
}

type entryView struct {
	ID     string      `json:"id"`
	Spec   string      `json:"spec"`
	Type   string      `json:"type"`
	Next   float64     `json:"next"`
	Prev   float64     `json:"prev"`
	Events []eventView `json:"events"`
}

type view struct {
	Time      float64      `json:"time"`
	Queues    []queueView  `json:"queues"`
	Servers   []serverView `json:"servers"`
	Scheduler []entryView  `json:"scheduler_entries"`
}

func inspect(args []string) error {
	fs := flag.NewFlagSet("inspect", flag.ExitOnError)
	redisOpt := redisFlag(fs)
	events := fs.Int("events", 30, "enqueue events to list per scheduler entry")
	_ = fs.Parse(args)
	insp := asynq.NewInspector(redisOpt())
	defer insp.Close()

	out := view{Time: unix(time.Now()), Queues: []queueView{}, Servers: []serverView{}, Scheduler: []entryView{}}
	queues, err := insp.Queues()
	if err != nil {
		return fmt.Errorf("queues: %w", err)
	}
	sort.Strings(queues)
	for _, q := range queues {
		info, err := insp.GetQueueInfo(q)
		if err != nil {
			return fmt.Errorf("queue %s: %w", q, err)
		}
		out.Queues = append(out.Queues, queueView{
			Queue: info.Queue, Size: info.Size, Groups: info.Groups, LatencySeconds: info.Latency.Seconds(),
			States: map[string]int{
				"pending": info.Pending, "active": info.Active, "scheduled": info.Scheduled, "retry": info.Retry,
				"archived": info.Archived, "completed": info.Completed, "aggregating": info.Aggregating,
			},
			Processed: info.Processed, Failed: info.Failed, ProcessedTotal: info.ProcessedTotal,
			FailedTotal: info.FailedTotal, Paused: info.Paused, MemoryUsage: info.MemoryUsage,
		})
	}
	servers, err := insp.Servers()
	if err != nil {
		return fmt.Errorf("servers: %w", err)
	}
	sort.Slice(servers, func(i, j int) bool { return servers[i].ID < servers[j].ID })
	for _, s := range servers {
		sv := serverView{ID: s.ID, Host: s.Host, PID: s.PID, Concurrency: s.Concurrency, Queues: s.Queues,
			StrictPriority: s.StrictPriority, Started: unix(s.Started), Status: s.Status, ActiveWorkers: []workerView{}}
		for _, w := range s.ActiveWorkers {
			sv.ActiveWorkers = append(sv.ActiveWorkers, workerView{TaskID: w.TaskID, TaskType: w.TaskType,
				Queue: w.Queue, Started: unix(w.Started), Deadline: unix(w.Deadline)})
		}
		out.Servers = append(out.Servers, sv)
	}
	entries, err := insp.SchedulerEntries()
	if err != nil {
		return fmt.Errorf("scheduler entries: %w", err)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].ID < entries[j].ID })
	for _, e := range entries {
		ev := entryView{ID: e.ID, Spec: e.Spec, Type: e.Task.Type(), Next: unix(e.Next), Prev: unix(e.Prev), Events: []eventView{}}
		list, err := insp.ListSchedulerEnqueueEvents(e.ID, asynq.PageSize(*events))
		if err != nil {
			return fmt.Errorf("enqueue events of %s: %w", e.ID, err)
		}
		for _, x := range list {
			ev.Events = append(ev.Events, eventView{TaskID: x.TaskID, EnqueuedAt: unix(x.EnqueuedAt)})
		}
		out.Scheduler = append(out.Scheduler, ev)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", " ")
	return enc.Encode(out)
}
