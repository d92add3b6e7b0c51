package telemetry

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/anytime-edge/edge/internal/testkit"
	"github.com/anytime-edge/edge/telemetry/mqtt"
)

// mosquitto is a broker process started for one test.
type mosquitto struct {
	bin  string
	port string
	dir  string
	cmd  *exec.Cmd
	out  *strings.Builder
}

// aclFile confines each device to its own topics: it writes only its
// outbound topics and reads only its commands. "ops" is the fleet side.
const aclFile = `user ops
topic readwrite anytime/#

pattern write anytime/v1/+/%u/status
pattern write anytime/v1/+/%u/result
pattern write anytime/v1/+/%u/result/labels
pattern write anytime/v1/+/%u/telemetry
pattern write anytime/v1/+/%u/event/+
pattern write anytime/v1/+/%u/cmd-ack
pattern write anytime/v1/+/%u/config/reported
pattern read anytime/v1/+/%u/cmd/+
`

var mosquittoUsers = map[string]string{"ops": "ops-pass", "drone-7": "pass-7", "drone-8": "pass-8"}

// startMosquitto runs Debian's mosquitto on a free loopback port with a
// password file and the ACL above; it skips the test when the binaries are
// missing (make setup installs them).
func startMosquitto(t *testing.T) *mosquitto { return startMosquittoConf(t, "persistence false\n") }

// startMosquittoConf is startMosquitto with extra configuration lines, in
// which {dir} stands for the broker's directory.
func startMosquittoConf(t *testing.T, extra string) *mosquitto {
	t.Helper()
	bin := "mosquitto"
	if _, err := exec.LookPath(bin); err != nil {
		if _, err := os.Stat("/usr/sbin/mosquitto"); err != nil {
			t.Skip("mosquitto not installed (apt-get install mosquitto mosquitto-clients); skipping interop test")
		}
		bin = "/usr/sbin/mosquitto"
	}
	for _, tool := range []string{"mosquitto_passwd", "mosquitto_sub", "mosquitto_pub"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (apt-get install mosquitto-clients); skipping interop test", tool)
		}
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	pw := testkit.WriteFile(t, filepath.Join(dir, "pw"), nil)
	for u, p := range mosquittoUsers {
		if out, err := exec.Command("mosquitto_passwd", "-b", pw, u, p).CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_passwd: %v: %s", err, out)
		}
	}
	testkit.WriteFile(t, filepath.Join(dir, "acl"), []byte(aclFile))
	_, port, _ := net.SplitHostPort(freeAddr(t))
	conf := fmt.Sprintf(`per_listener_settings false
allow_anonymous false
password_file %s/pw
acl_file %s/acl
log_dest file %s/broker.log
log_type all
listener %s 127.0.0.1
`, dir, dir, dir, port) + strings.ReplaceAll(extra, "{dir}", dir)
	if os.Geteuid() == 0 {
		conf += "user root\n" // do not drop to user mosquitto, which cannot read the temp dir
	}
	testkit.WriteFile(t, filepath.Join(dir, "mosquitto.conf"), []byte(conf))
	m := &mosquitto{bin: bin, port: port, dir: dir, out: &strings.Builder{}}
	t.Cleanup(func() {
		m.stop(syscall.SIGKILL)
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "broker.log"))
			t.Logf("mosquitto output: %s\nbroker.log:\n%s", m.out.String(), log)
		}
	})
	m.start(t)
	return m
}

// start runs the broker and waits until it listens.
func (m *mosquitto) start(t *testing.T) {
	t.Helper()
	m.cmd = exec.Command(m.bin, "-c", filepath.Join(m.dir, "mosquitto.conf"))
	m.cmd.Stdout, m.cmd.Stderr = m.out, m.out
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "mosquitto to listen", func() bool {
		c, err := net.Dial("tcp", "127.0.0.1:"+m.port)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

// stop signals the broker and waits for it to exit.
func (m *mosquitto) stop(sig os.Signal) {
	if m.cmd == nil {
		return
	}
	m.cmd.Process.Signal(sig)
	m.cmd.Wait()
	m.cmd = nil
}

func (m *mosquitto) url() string { return "tcp://127.0.0.1:" + m.port }

// sub runs mosquitto_sub as user and returns its output lines ("topic
// payload") on a channel once the subscription is acknowledged.
func (m *mosquitto) sub(t *testing.T, user, topic string, n int, wait time.Duration) <-chan string {
	t.Helper()
	args := []string{"-h", "127.0.0.1", "-p", m.port, "-u", user, "-P", mosquittoUsers[user], "-i", user + "-sub",
		"-t", topic, "-v", "-q", "1", "-d", "-C", fmt.Sprint(n), "-W", fmt.Sprint(int(wait.Seconds()))}
	// mosquitto_sub block-buffers stdout into a pipe; stdbuf makes it
	// line-buffered so that SUBACK and messages are seen as they happen.
	cmd := exec.Command("mosquitto_sub", args...)
	if sb, err := exec.LookPath("stdbuf"); err == nil {
		cmd = exec.Command(sb, append([]string{"-oL", "mosquitto_sub"}, args...)...)
	}
	stdout := testkit.Start(t, cmd, true)
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := make(chan string, 1024)
	subacked := make(chan struct{})
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		once := sync.Once{}
		for sc.Scan() {
			l := sc.Text()
			if strings.HasPrefix(l, "Client ") {
				if strings.Contains(l, "received SUBACK") {
					once.Do(func() { close(subacked) })
				}
				continue
			}
			if strings.HasPrefix(l, "anytime/") {
				lines <- l
			}
		}
		once.Do(func() { close(subacked) })
	}()
	select {
	case <-subacked:
	case <-time.After(10 * time.Second):
		t.Fatal("mosquitto_sub did not subscribe")
	}
	return lines
}

// pub runs mosquitto_pub as user and returns its combined output and error.
func (m *mosquitto) pub(user, topic, payload string, extra ...string) (string, error) {
	args := append([]string{"-h", "127.0.0.1", "-p", m.port, "-u", user, "-P", mosquittoUsers[user], "-i", user + "-pub",
		"-t", topic, "-q", "1", "-m", payload}, extra...)
	out, err := exec.Command("mosquitto_pub", args...).CombinedOutput()
	return string(out), err
}

func collect(lines <-chan string, d time.Duration) []string {
	var out []string
	timeout := time.After(d)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				return out
			}
			out = append(out, l)
		case <-timeout:
			return out
		}
	}
}

func devicePublisher(t *testing.T, m *mosquitto, device, password string, ctrl Controller) *Publisher {
	t.Helper()
	log, _ := testLogger()
	cfg := Config{BrokerURL: m.url(), Site: "lab", Device: device, Username: device, Password: password, SpoolDir: t.TempDir(), Software: "test"}
	p := newPublisher(t, cfg, ctrl, log)
	t.Cleanup(func() { closePublisher(t, p) })
	return p
}

// TestMosquittoInterop: results, retained status and commands work with a
// real Mosquitto and its command-line clients.
func TestMosquittoInterop(t *testing.T) {
	m := startMosquitto(t)
	ctrl := &fakeController{exits: 4, lim: Limits{Threshold: 0.8}}
	p := devicePublisher(t, m, "drone-7", "pass-7", ctrl)
	waitConnected(t, p)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lines := m.sub(t, "ops", "anytime/v1/lab/drone-7/#", 100, 15*time.Second)
	for i := 1; i <= 20; i++ {
		if err := p.Publish(ctx, sampleResult(uint64(i))); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	if out, err := m.pub("ops", "anytime/v1/lab/drone-7/cmd/set-deadline", string(cmdJSON(CmdSetDeadline, "m1", now, now.Add(time.Minute), `{"ms":40}`))); err != nil {
		t.Fatalf("mosquitto_pub: %v: %s", err, out)
	}
	var results, acks, configs int
	deadline := time.After(15 * time.Second)
	for results < 20 || acks < 1 || configs < 1 {
		var l string
		var ok bool
		select {
		case l, ok = <-lines:
			if !ok {
				t.Fatalf("mosquitto_sub ended: %d results, %d acks, %d config", results, acks, configs)
			}
		case <-deadline:
			t.Fatalf("timed out: %d results, %d acks, %d config", results, acks, configs)
		}
		topic, payload, _ := strings.Cut(l, " ")
		suffix := strings.TrimPrefix(topic, "anytime/v1/lab/drone-7/")
		if suffix != "cmd/set-deadline" {
			checkAgainst(t, schemaFor(suffix), []byte(payload))
		}
		switch suffix {
		case "result":
			results++
		case "cmd-ack":
			var a CmdAck
			if err := json.Unmarshal([]byte(payload), &a); err != nil {
				t.Fatalf("cmd-ack %s: %v", payload, err)
			}
			if a.CmdID != "m1" || a.Status != AckAccepted {
				t.Fatalf("ack = %s", payload)
			}
			acks++
		case "config/reported":
			var c ConfigReported
			if err := json.Unmarshal([]byte(payload), &c); err != nil {
				t.Fatalf("config/reported %s: %v", payload, err)
			}
			if c.Limits.DeadlineMS == 40 {
				configs++
			}
		}
	}
	// Retained status is online.
	st := m.sub(t, "ops", "anytime/v1/lab/drone-7/status", 1, 5*time.Second)
	got := collect(st, 5*time.Second)
	if len(got) != 1 || !strings.Contains(got[0], `"online":true`) {
		t.Fatalf("retained status = %v, want online", got)
	}
}

// TestMosquittoACL: a device cannot publish to another device's topics nor
// read another device's commands.
func TestMosquittoACL(t *testing.T) {
	m := startMosquitto(t)
	ctrl := &fakeController{exits: 4}
	p := devicePublisher(t, m, "drone-7", "pass-7", ctrl)
	waitConnected(t, p)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ops := m.sub(t, "ops", "anytime/v1/lab/drone-7/result", 10, 10*time.Second)
	snoop := m.sub(t, "drone-8", "anytime/v1/lab/drone-7/cmd/#", 1, 6*time.Second)

	// drone-8 forges a result for drone-7: MQTT 3.1.1 cannot report the
	// denial, MQTT 5 can.
	forged := `{"forged":true}`
	if out, err := m.pub("drone-8", "anytime/v1/lab/drone-7/result", forged); err != nil {
		t.Fatalf("v3.1.1 publish: %v: %s", err, out)
	}
	out, _ := m.pub("drone-8", "anytime/v1/lab/drone-7/result", forged, "-V", "mqttv5")
	if !strings.Contains(out, "Not authorized") {
		t.Errorf("MQTT 5 publish to another device's topic: output %q, want Not authorized", out)
	}
	// drone-7's own result and a command from ops go through.
	if err := p.Publish(ctx, sampleResult(1)); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if out, err := m.pub("ops", "anytime/v1/lab/drone-7/cmd/snapshot", string(cmdJSON(CmdSnapshot, "a1", now, now.Add(time.Minute), ""))); err != nil {
		t.Fatalf("mosquitto_pub: %v: %s", err, out)
	}
	waitFor(t, 10*time.Second, "drone-7 to get its command", func() bool {
		ctrl.mu.Lock()
		defer ctrl.mu.Unlock()
		return ctrl.snapshots == 1
	})
	got := collect(ops, 2*time.Second)
	if len(got) != 1 || strings.Contains(got[0], "forged") {
		t.Fatalf("ops saw %v on drone-7/result, want only drone-7's own result", got)
	}
	if snooped := collect(snoop, 7*time.Second); len(snooped) != 0 {
		t.Fatalf("drone-8 read drone-7's commands: %v", snooped)
	}
}

// TestMosquittoWrongPassword: a wrong password is refused with a clear
// error.
func TestMosquittoWrongPassword(t *testing.T) {
	m := startMosquitto(t)
	p := devicePublisher(t, m, "drone-7", "wrong", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := p.WaitConnected(ctx)
	if !errors.Is(err, mqtt.ErrRefused) {
		t.Fatalf("WaitConnected err = %v, want ErrRefused", err)
	}
	msg := err.Error()
	t.Logf("error: %s", msg)
	if !strings.Contains(msg, "broker refused the connection") || !(strings.Contains(msg, "not Authorized") || strings.Contains(msg, "bad user name or password")) {
		t.Fatalf("error %q does not say why", msg)
	}
	if strings.Contains(msg, "wrong") {
		t.Fatalf("error %q leaks the password", msg)
	}
}

// TestEmbeddedBrokerWithMosquittoSub runs the README's line against the
// embedded broker: mosquitto_sub -h 127.0.0.1 -t 'anytime/#' -v.
func TestEmbeddedBrokerWithMosquittoSub(t *testing.T) {
	if _, err := exec.LookPath("mosquitto_sub"); err != nil {
		t.Skip("mosquitto_sub not installed (apt-get install mosquitto-clients); skipping")
	}
	log, _ := testLogger()
	b, p := embeddedPublisher(t, Config{Site: "lab", Device: "drone-7", SpoolDir: t.TempDir(), BrokerListen: "127.0.0.1:0"}, nil, log)
	_, port, err := net.SplitHostPort(b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	// The online status is retained before mosquitto_sub subscribes, so
	// it sees it once (as the retained copy), then the 5 results.
	ctx := context.Background()
	var col collector
	col.attach(t, b, "anytime/v1/lab/drone-7/status")
	waitFor(t, 5*time.Second, "the retained status", func() bool { return len(col.snapshot()) > 0 })
	args := []string{"-h", "127.0.0.1", "-p", port, "-t", "anytime/#", "-v", "-C", "6", "-W", "10"} // the status and 5 results
	cmd := exec.Command("mosquitto_sub", args...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	waitFor(t, 5*time.Second, "mosquitto_sub to subscribe", func() bool { return b.Subscribers("anytime/v1/lab/drone-7/result") > 0 })
	for i := 1; i <= 5; i++ {
		if err := p.Publish(ctx, sampleResult(uint64(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("mosquitto_sub: %v: %s", err, out.String())
	}
	n := strings.Count(out.String(), "anytime/v1/lab/drone-7/result {")
	if n != 5 {
		t.Fatalf("mosquitto_sub printed %d results, want 5:\n%s", n, out.String())
	}
}

// TestMosquittoRestartNoLoss stops Mosquitto (with persistence, as a fleet
// broker runs) during a 2,000-result stream and starts it again; a
// persistent-session consumer gets every result, in order after
// de-duplication.
func TestMosquittoRestartNoLoss(t *testing.T) {
	const n = 2000
	m := startMosquittoConf(t, "persistence true\npersistence_location {dir}/\nmax_queued_messages 0\n")
	var col collector
	log, _ := testLogger()
	consumer, err := mqtt.New(mqtt.Config{URL: m.url(), ClientID: "ops-consumer", Username: "ops", Password: mosquittoUsers["ops"],
		Log: log, Ordered: true, Subscriptions: []mqtt.Subscription{{Filter: "anytime/v1/lab/drone-7/result", QoS: 1, Handler: func(topic string, payload []byte) {
			col.tap(topic, payload, false)
		}}}})
	if err != nil {
		t.Fatal(err)
	}
	consumer.Start()
	defer consumer.Close(context.Background(), 0)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := consumer.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	p := devicePublisher(t, m, "drone-7", "pass-7", nil)
	waitConnected(t, p)
	publishThroughOutage(t, p, n,
		func() { m.stop(syscall.SIGTERM) }, // saves its persistence database
		func() { m.start(t) })
	allInOrder(t, &col, n)
}
