package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/hibiken/asynq"
)

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
	GroupSizes     map[string]int `json:"group_sizes"`
	LatencySeconds float64        `json:"latency_seconds"`
	States         map[string]int `json:"states"`
	Orphaned       int            `json:"orphaned"`
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
	ID      string      `json:"id"`
	Spec    string      `json:"spec"`
	Type    string      `json:"type"`
	Options []string    `json:"options"`
	Next    float64     `json:"next"`
	Prev    float64     `json:"prev"`
	Events  []eventView `json:"events"`
}

type view struct {
	Time      float64      `json:"time"`
	Version   string       `json:"asynq_version"`
	Queues    []queueView  `json:"queues"`
	Servers   []serverView `json:"servers"`
	Scheduler []entryView  `json:"scheduler_entries"`
}

// orphaned counts the queue's active tasks whose lease has expired, as Asynq's Inspector flags them.
func orphaned(insp *asynq.Inspector, queue string) (int, error) {
	const page = 500
	n := 0
	for p := 1; ; p++ {
		tasks, err := insp.ListActiveTasks(queue, asynq.PageSize(page), asynq.Page(p))
		if err != nil {
			return 0, err
		}
		for _, t := range tasks {
			if t.IsOrphaned {
				n++
			}
		}
		if len(tasks) < page {
			return n, nil
		}
	}
}

func inspect(args []string) error {
	fs := flag.NewFlagSet("inspect", flag.ExitOnError)
	redisOpt := redisFlag(fs)
	events := fs.Int("events", 30, "enqueue events to list per scheduler entry (newest first)")
	_ = fs.Parse(args)
	insp := asynq.NewInspector(redisOpt())
	defer insp.Close()

	out := view{Time: unix(time.Now()), Version: asynqVersion(), Queues: []queueView{}, Servers: []serverView{},
		Scheduler: []entryView{}}
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
		qv := queueView{
			Queue: info.Queue, Size: info.Size, Groups: info.Groups, GroupSizes: map[string]int{},
			LatencySeconds: info.Latency.Seconds(),
			States: map[string]int{
				"pending": info.Pending, "active": info.Active, "scheduled": info.Scheduled, "retry": info.Retry,
				"archived": info.Archived, "completed": info.Completed, "aggregating": info.Aggregating,
			},
			Processed: info.Processed, Failed: info.Failed, ProcessedTotal: info.ProcessedTotal,
			FailedTotal: info.FailedTotal, Paused: info.Paused, MemoryUsage: info.MemoryUsage,
		}
		if qv.Orphaned, err = orphaned(insp, q); err != nil {
			return fmt.Errorf("active tasks of %s: %w", q, err)
		}
		groups, err := insp.Groups(q)
		if err != nil {
			return fmt.Errorf("groups of %s: %w", q, err)
		}
		for _, g := range groups {
			qv.GroupSizes[g.Group] = g.Size
		}
		out.Queues = append(out.Queues, qv)
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
		ev := entryView{ID: e.ID, Spec: e.Spec, Type: e.Task.Type(), Options: []string{}, Next: unix(e.Next),
			Prev: unix(e.Prev), Events: []eventView{}}
		for _, o := range e.Opts {
			ev.Options = append(ev.Options, o.String())
		}
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
