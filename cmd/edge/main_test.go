package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestMain lets a test run the real command in a subprocess: with
// EDGE_TEST_MAIN=1 the test binary is `edge`.
func TestMain(m *testing.M) {
	if os.Getenv("EDGE_TEST_MAIN") == "1" {
		os.Args = append([]string{"edge"}, os.Args[1:]...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// edgeCommand is `edge args...` as a fresh process (the test binary, see
// TestMain) in dir ("": the test's), with env added to the environment.
func edgeCommand(dir string, env []string, args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), append([]string{"EDGE_TEST_MAIN=1"}, env...)...)
	return cmd
}

// edgeProcess runs `edge args...` as a fresh process in dir.
func edgeProcess(t *testing.T, dir string, env []string, args ...string) (string, error) {
	t.Helper()
	out, err := edgeCommand(dir, env, args...).CombinedOutput()
	return string(out), err
}

// TestMissingONNXRuntimeNamesEveryPathAndTheFix runs infer where no ONNX
// Runtime library can be found: one error, naming each path tried and the
// command that installs it, and a non-zero exit.
func TestMissingONNXRuntimeNamesEveryPathAndTheFix(t *testing.T) {
	dir := t.TempDir()
	bundle := mustAbs(t, filepath.Join(repo, "testdata/bundles/tiny"))
	out, err := edgeProcess(t, dir, []string{"EDGE_ORT_LIB=/nonexistent/env/libonnxruntime.so.1", "LD_LIBRARY_PATH=" + dir},
		"infer", "--bundle", bundle, "--ort-lib", "/nonexistent/flag/libonnxruntime.so.1", "x.png")
	if err == nil {
		t.Fatalf("infer succeeded without ONNX Runtime:\n%s", out)
	}
	for _, want := range []string{"/nonexistent/flag/libonnxruntime.so.1", "/nonexistent/env/libonnxruntime.so.1", ".deps/libonnxruntime.so.1", "make setup"} {
		if !strings.Contains(out, want) {
			t.Errorf("error does not name %q:\n%s", want, out)
		}
	}
}

// TestSecondSignalExitsAtOnce: the first signal cancels the run, the second
// exits whatever the shutdown is waiting on.
func TestSecondSignalExitsAtOnce(t *testing.T) {
	sigs := make(chan os.Signal, 2)
	ctx, cancel := context.WithCancel(context.Background())
	exited := make(chan int, 1)
	go onSignals(sigs, cancel, func(code int) { exited <- code })
	sigs <- syscall.SIGTERM
	<-ctx.Done()
	select {
	case code := <-exited:
		t.Fatalf("exited (%d) on the first signal", code)
	default:
	}
	sigs <- syscall.SIGTERM
	if code := <-exited; code != 128+int(syscall.SIGTERM) {
		t.Errorf("exit status %d, want %d", code, 128+int(syscall.SIGTERM))
	}
}
