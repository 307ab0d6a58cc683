// Command asynqpeer is the tests' real Asynq: it enqueues tasks, runs a worker server and a scheduler,
// pauses queues, and prints Asynq's own Inspector view as JSON. The exporter reads Asynq's state from
// Redis on its own; this peer writes that state with Asynq itself, and its Inspector view is the truth
// the exporter's metrics are compared with. The same source builds against every supported Asynq
// version (scripts/go-peers.sh: asynqpeer on go.mod, asynqpeer-v025 on go.asynq-v025.mod).
//
//	asynqpeer version
//	asynqpeer enqueue   -redis ADDR -queue Q [-type T] [-count N] [-do succeed|fail|block|panic] [-for D]
//	                    [-delay D] [-max-retry N] [-unique D] [-group G] [-retention D] [-timeout D]
//	                    [-parallel N] [-every D]
//	asynqpeer worker    -redis ADDR [-concurrency N] [-queues q=prio,...] [-strict] [-shutdown-timeout D]
//	                    [-group-grace D] [-group-max-size N] [-retry-delay D] [-delayed-check D]
//	                    [-control FILE]
//	asynqpeer scheduler -redis ADDR [-heartbeat D] -entry 'SPEC|TYPE|QUEUE[|do[|opt=v,...]]' ...
//	asynqpeer pause|unpause -redis ADDR -queue Q
//	asynqpeer inspect   -redis ADDR [-events N]
//
// A task's payload is JSON {"do": "succeed"|"fail"|"block"|"panic", "for": "2s"}; "block" waits until
// the worker shuts down (or "for" elapses). A worker's -control file, a JSON object task type -> action,
// overrides the payload while it says so (read at each task), so a running worker can be told to fail.
//
// Long-running subcommands print "ready" once running. worker: SIGTERM or SIGINT stops it gracefully
// (Asynq's Shutdown), SIGTSTP stops it taking new tasks (Asynq's Stop, status "stopped"), SIGKILL leaves
// its leases and heartbeat behind. scheduler: SIGTERM/SIGINT is Asynq's Shutdown (entries and history
// cleared), SIGKILL leaves them to expire. enqueue -every: SIGTERM/SIGINT ends the loop.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/hibiken/asynq"
)

func main() {
	if len(os.Args) < 2 {
		fail("usage: asynqpeer version|enqueue|worker|scheduler|pause|unpause|inspect [flags]")
	}
	cmd, args := os.Args[1], os.Args[2:]
	var err error
	switch cmd {
	case "version":
		fmt.Println(asynqVersion())
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

// asynqVersion is the version of github.com/hibiken/asynq this binary was built with.
func asynqVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	for _, dep := range info.Deps {
		if dep.Path == "github.com/hibiken/asynq" {
			if dep.Replace != nil {
				return dep.Replace.Version
			}
			return dep.Version
		}
	}
	return "unknown"
}

// redisFlag adds the -redis, -db and -password flags every subcommand shares.
func redisFlag(fs *flag.FlagSet) func() asynq.RedisClientOpt {
	addr := fs.String("redis", "127.0.0.1:6379", "Redis address")
	db := fs.Int("db", 0, "Redis database")
	password := fs.String("password", os.Getenv("ASYNQPEER_REDIS_PASSWORD"), "Redis password")
	username := fs.String("username", os.Getenv("ASYNQPEER_REDIS_USERNAME"), "Redis ACL user")
	return func() asynq.RedisClientOpt {
		return asynq.RedisClientOpt{Addr: *addr, DB: *db, Username: *username, Password: *password}
	}
}

// signals returns a channel that receives the given signals.
func signals(sigs ...os.Signal) chan os.Signal {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, sigs...)
	return ch
}

var stopSignals = []os.Signal{syscall.SIGTERM, syscall.SIGINT}
