package journal

import (
	"bufio"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const killChildEnv = "POOL_JOURNAL_KILL_CHILD"

// killChild appends until it is killed, printing each sequence number
// after Append returned it.
func killChild(path string, group bool) {
	j, err := Open(path, Options{GroupCommit: group, Logger: quiet()})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(2)
	}
	pid := strconv.Itoa(os.Getpid())
	workers := 1
	if group {
		workers = 3
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := 0; ; i++ {
				e, err := j.Append(Entry{Type: TypeConfig, Detail: map[string]string{
					"pid": pid, "w": strconv.Itoa(w), "i": strconv.Itoa(i),
					"pad": strings.Repeat("x", rand.IntN(600)),
				}})
				if err != nil {
					fmt.Fprintln(os.Stderr, "child:", err)
					os.Exit(3)
				}
				os.Stdout.WriteString(strconv.FormatUint(e.Seq, 10) + "\n")
			}
		})
	}
	wg.Wait()
}

func TestKill9(t *testing.T) {
	if p := os.Getenv(killChildEnv); p != "" {
		killChild(p, os.Getenv(killChildEnv+"_GROUP") != "")
		return
	}
	if testing.Short() {
		t.Skip("-short")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "journal")
	total := 0
	for round := range 20 {
		cmd := exec.Command(exe, "-test.run=^TestKill9$", "-test.count=1")
		cmd.Env = append(os.Environ(), killChildEnv+"="+path)
		if round%2 == 1 {
			cmd.Env = append(cmd.Env, killChildEnv+"_GROUP=1")
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var acked []uint64
		first := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				if v, err := strconv.ParseUint(sc.Text(), 10, 64); err == nil {
					if len(acked) == 0 {
						close(first)
					}
					acked = append(acked, v)
				}
			}
		}()
		select {
		case <-first:
		case <-done:
			cmd.Wait()
			t.Fatalf("round %d: child ended before appending: %s", round, stderr.String())
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			t.Fatalf("round %d: child never appended", round)
		}
		time.Sleep(time.Duration(rand.IntN(100)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		<-done
		err = cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("round %d: child ended with %v: %s", round, err, stderr.String())
		}

		// Reopen (repairing a torn tail if the kill left one), verify, and
		// find every acknowledged entry with the child's pid.
		j := openT(t, path, Options{})
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := Verify(path); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		bySeq := map[uint64]string{}
		for _, e := range readAll(t, path) {
			bySeq[e.Seq] = e.Detail["pid"]
		}
		pid := strconv.Itoa(cmd.Process.Pid)
		for _, s := range acked {
			if bySeq[s] != pid {
				t.Fatalf("round %d: acknowledged entry %d lost (found pid %q)", round, s, bySeq[s])
			}
		}
		total += len(acked)
	}
	t.Logf("%d acknowledged entries survived 20 kills", total)
}
