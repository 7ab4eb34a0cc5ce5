// Command floor is the reference for heal latency: the least a healer can
// do. It calls ContainerRestart in a new goroutine for each unhealthy event
// of containers with the given label, with no policy and no bus. It imports
// the moby client itself on purpose: it must share no code with the healer.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"
)

func main() {
	label := flag.String("label", "", "restart containers with this label (key or key=value)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cli, err := client.New(client.FromEnv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		os.Exit(1)
	}
	f := client.Filters{}.Add("type", "container").Add("event", "health_status")
	if *label != "" {
		f = f.Add("label", *label)
	}
	res := cli.Events(ctx, client.EventsListOptions{Filters: f})
	fmt.Println("floor: watching") // the driver waits for this line
	timeout := 10
	for {
		select {
		case <-ctx.Done():
			return
		case err := <-res.Err:
			fmt.Fprintln(os.Stderr, "floor: events:", err)
			os.Exit(1)
		case m := <-res.Messages:
			if m.Action == events.ActionHealthStatusUnhealthy {
				go func(id string) {
					_, _ = cli.ContainerRestart(ctx, id, client.ContainerRestartOptions{Timeout: &timeout})
				}(m.Actor.ID)
			}
		}
	}
}
