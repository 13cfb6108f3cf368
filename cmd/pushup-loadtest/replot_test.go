package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pushuphq/pushup/loadtest"
)

func TestReplot(t *testing.T) {
	dir := t.TempDir()
	rep := loadtest.Report{Experiment: "event-vs-thread", TimeScale: 1}
	for _, cc := range []int{500, 1000} {
		for _, m := range []string{"event", "thread"} {
			rep.Points = append(rep.Points, loadtest.Point{Series: m, Model: m, Mode: loadtest.ModeLongPoll, CC: cc, Nodes: 1,
				Messages: 5, RMP: 100, SMU: int64(cc) << 10, TripTime: loadtest.LatencySummary{Mean: time.Duration(cc) * time.Microsecond}})
		}
	}
	name := filepath.Join(dir, "event-vs-thread.json")
	f, err := os.Create(name)
	require.NoError(t, err)
	require.NoError(t, rep.WriteJSON(f))
	require.NoError(t, f.Close())

	var out, errOut bytes.Buffer
	require.NoError(t, dispatch(context.Background(), []string{"replot", "-formats", "svg", name}, &out, &errOut))
	for _, file := range []string{"event-vs-thread.txt", "event-vs-thread.md", "event-vs-thread.csv", "fig9-smu.svg", "fig10-mpt.svg", "fig11-rmp.svg"} {
		assert.FileExists(t, filepath.Join(dir, file))
		assert.Contains(t, errOut.String(), "wrote "+filepath.Join(dir, file))
	}
	assert.NoFileExists(t, filepath.Join(dir, "fig9-smu.png"), "only the formats asked for")
	txt, err := os.ReadFile(filepath.Join(dir, "event-vs-thread.txt"))
	require.NoError(t, err)
	assert.Contains(t, string(txt), "Figure 9 data")

	assert.ErrorIs(t, dispatch(context.Background(), []string{"replot"}, &out, &errOut), errUsage)
	err = dispatch(context.Background(), []string{"replot", filepath.Join(dir, "missing.json")}, &out, &errOut)
	assert.ErrorIs(t, err, os.ErrNotExist)
	err = dispatch(context.Background(), []string{"replot", filepath.Join(dir, "event-vs-thread.csv")}, &out, &errOut)
	assert.ErrorIs(t, err, loadtest.ErrInvalidConfig)
}
