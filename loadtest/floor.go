package loadtest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strconv"

	"github.com/pushuphq/pushup/internal/testbed"
)

// ErrFloor: the floor server could not be started or stopped cleanly
// (testbed's).
var ErrFloor = testbed.ErrFloor

// startFloor starts the floor server: this executable again (see
// floorserver_linux.go and testbed.StartFloor).
func startFloor(scraper *http.Client) (*brokerUnderTest, error) {
	if runtime.GOOS != "linux" {
		return nil, fmt.Errorf("%w: the floor server uses epoll, Linux only", ErrFloor)
	}
	f, err := testbed.StartFloor(testbed.FloorConfig{})
	if err != nil {
		return nil, err
	}
	return &brokerUnderTest{
		url: f.URL, pid: f.PID, version: "floor (one thread, edge-triggered epoll, raw read/write)", proto: floorProtocol{},
		waiting: func(ctx context.Context) (int64, error) { return floorWaiting(ctx, scraper, f.URL) },
		stop:    f.Stop, exited: f.Exited(), log: f.Log,
	}, nil
}

// floorWaiting asks the floor server how many polls wait.
func floorWaiting(ctx context.Context, client *http.Client, url string) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/waiting", nil)
	if err != nil {
		return 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64))
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(string(body), 10, 64)
}

// floorProtocol is the floor server's: GET /sub waits for the next
// publish, whose data is the whole answer's body; POST /pub publishes.
// There is no position: a poll gets the next message.
type floorProtocol struct{}

func (floorProtocol) request(b []byte, host, _ string) []byte {
	return append(b, "GET /sub HTTP/1.1\r\nHost: "+host+"\r\n\r\n"...)
}

func (floorProtocol) answer(resp *http.Response, body []byte, position string) ([][]byte, string, error) {
	if resp.StatusCode != http.StatusOK {
		return nil, "", fmt.Errorf("%w: %s", ErrUnexpectedStatus, resp.Status)
	}
	return [][]byte{body}, position, nil
}

func (floorProtocol) publish(ctx context.Context, client *http.Client, base string, payload []byte) error {
	return post(ctx, client, base+"/pub", "application/json", payload, http.StatusCreated)
}
