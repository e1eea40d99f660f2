// Command goselfsup-plugin-misbehave is a plugin for the host's failure tests: Sleeper
// reports progress and logs, then waits until it is cancelled; Failer returns an error.
package main

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/goselfsup/goselfsup/plugins/sdk"
)

func main() {
	sdk.Serve(sdk.Plugin{
		Name: "misbehave", Version: "0.0.1",
		Components: []sdk.Component{
			{Type: "Sleeper", Doc: "reports progress, then sleeps until cancelled", Run: sleeper},
			{Type: "Failer", Doc: "fails", Run: func(context.Context, *sdk.Run) error { return errors.New("the data is bad") }},
		},
	})
}

func sleeper(ctx context.Context, r *sdk.Run) error {
	r.Log.Info("first line")
	r.Log.Warn("second line", zap.Int("n", 2))
	if err := r.Progress("sleeping", 1, 2); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		r.Log.Info("cancelled")
		return ctx.Err()
	case <-time.After(time.Minute):
		return r.Metric("slept", 1)
	}
}
