package webhooks

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sockudo/sockudo/storage"
)

const crashURL = "http://127.0.0.1:1/unreachable"

// TestKill9KeepsCommittedEvents runs a dispatcher in a child process that
// emits events as fast as it can, kills it with SIGKILL in mid-stream, and
// checks that every event the child had reported as committed is in the
// reopened database, in order, without gaps.
func TestKill9KeepsCommittedEvents(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a process")
	}
	path := filepath.Join(t.TempDir(), "sockudo.db")
	db, err := storage.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.PutApp(app(storage.Webhook{URL: crashURL})); err != nil {
		t.Fatal(err)
	}
	_ = db.Close()

	cmd := exec.Command(os.Args[0], "-test.run=^TestKill9Child$", "-test.v")
	cmd.Env = append(os.Environ(), "WEBHOOKS_KILL9_CHILD_DB="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Read "committed N" lines until N passes the mark, then kill at once:
	// the child is still emitting and committing.
	const mark = 20_000
	committed := 0
	sc := bufio.NewScanner(out)
	deadline := time.AfterFunc(30*time.Second, func() { _ = cmd.Process.Kill() })
	defer deadline.Stop()
	for sc.Scan() {
		if n, ok := strings.CutPrefix(sc.Text(), "committed "); ok {
			committed, _ = strconv.Atoi(n)
			if committed >= mark {
				break
			}
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if committed < mark {
		t.Fatalf("child reported only %d committed events", committed)
	}

	db, err = storage.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	head, err := db.WebhookHead(testApp, crashURL, 10_000_000)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range head {
		if want := fmt.Sprintf(`"data":"%d"`, i); !strings.Contains(string(e.Event), want) {
			t.Fatalf("entry %d is %s; want data %d (a gap or reordering)", i, e.Event, i)
		}
	}
	if len(head) < committed {
		t.Fatalf("%d events reported committed, %d survived kill -9", committed, len(head))
	}
	t.Logf("reported committed %d, survived %d (the rest were emitted after the last report)", committed, len(head))
}

// TestKill9Child is the child process of TestKill9KeepsCommittedEvents.
func TestKill9Child(t *testing.T) {
	path := os.Getenv("WEBHOOKS_KILL9_CHILD_DB")
	if path == "" {
		t.Skip("child process only")
	}
	db, err := storage.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.MaxQueueDepth = 10_000_000 // every event stays queued: the parent checks them all
	d, err := New(cfg, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	go func() {
		last := uint64(0)
		for {
			if q := d.Stats().Queued; q != last {
				last = q
				fmt.Printf("committed %d\n", q)
			}
			time.Sleep(100 * time.Microsecond) // polling a counter
		}
	}()
	for n := 0; ; n++ {
		for d.Stats().Buffered > 5000 {
			time.Sleep(100 * time.Microsecond) // keep the buffer from filling
		}
		d.Emit(clientEvent("private-c", strconv.Itoa(n)))
	}
}
