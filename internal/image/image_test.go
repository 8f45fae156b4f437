// Package image_test builds the shipped container image (the Dockerfile, with `make
// image`) and runs it as an operator would: with Podman, on the host's network, against
// MariaDB and a fake WeChat; it logs in, calls me, asks the image's own healthcheck, and
// stops it with SIGTERM, which must end in exit status 0 within the grace period.
package image_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wxlogin/wxlogin/internal/testdb"
	"github.com/wxlogin/wxlogin/internal/wechat/fakewechat"
)

// containersConf makes Podman work here: runc, no default ulimits, no systemd.
const containersConf = `[containers]
default_ulimits = []

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
`

func TestImageRunsAndStopsCleanly(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the container image")
	}
	if _, err := exec.LookPath("podman"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("podman is not installed (apt-get install podman runc): the image must be built and run in CI")
		}
		t.Skip("podman is not installed (apt-get install podman runc)")
	}
	var mysql testdb.Backend
	for _, b := range testdb.Backends(t) {
		if b.Name == "mysql" {
			mysql = b
		}
	}
	if mysql.Name == "" {
		t.Skip("needs MariaDB") // under CI=true testdb fails the run first
	}
	conf := filepath.Join(t.TempDir(), "containers.conf")
	if err := os.WriteFile(conf, []byte(containersConf), 0o644); err != nil {
		t.Fatal(err)
	}
	podman := func(args ...string) (string, error) {
		cmd := exec.Command("podman", args...)
		cmd.Env = append(os.Environ(), "CONTAINERS_CONF="+conf)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	const image = "localhost/wxlogin:citest"
	build := exec.Command("make", "image", "IMAGE="+image, "CONTAINER=podman")
	build.Dir = "../.."
	build.Env = append(os.Environ(), "CONTAINERS_CONF="+conf)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("make image: %v\n%s", err, out)
	}
	t.Cleanup(func() { podman("rmi", "-f", image) })
	if out, err := podman("image", "inspect", image, "--format", "{{.Config.User}} {{index .Config.Labels \"org.opencontainers.image.version\"}}"); err != nil || !strings.HasPrefix(out, "65532:65532 ") {
		t.Errorf("the image's user and version label: %q %v, want a user that is not root", out, err)
	}

	fake := fakewechat.New(fakewechat.Options{AppID: "wximage000000001", Secret: "image-secret"})
	fakeSrv := httptest.NewServer(fake)
	defer fakeSrv.Close()
	port := freePort(t)
	name := fmt.Sprintf("wxlogin-citest-%d", port)
	env := map[string]string{
		"WXLOGIN_ADDR": fmt.Sprintf("127.0.0.1:%d", port), "WXLOGIN_DATABASE_URL": mysql.URL(t),
		"WXLOGIN_SECRET_KEY": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
		"WECHAT_APPID":       "wximage000000001", "WECHAT_SECRET": "image-secret", "WECHAT_API_BASE": fakeSrv.URL,
	}
	args := []string{"run", "-d", "--name", name, "--network", "host"}
	for k, v := range env {
		args = append(args, "-e", k+"="+v)
	}
	if out, err := podman(append(args, image)...); err != nil {
		t.Fatalf("podman run: %v\n%s", err, out)
	}
	t.Cleanup(func() { podman("rm", "-f", name) })
	logs := func() string { out, _ := podman("logs", name); return out }

	base := "http://" + env["WXLOGIN_ADDR"]
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if resp, err := http.Get(base + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the container never became ready:\n%s", logs())
		}
	}
	code := fake.IssueCode(fakewechat.User{OpenID: "oImage0000000000000000000001"})
	login := graphql(t, base, "", `mutation { login(code: "`+code+`") { token isNewUser } }`)
	token, _ := dig(login, "data", "login", "token").(string)
	if token == "" || dig(login, "data", "login", "isNewUser") != true {
		t.Fatalf("login in the container: %v\n%s", login, logs())
	}
	if me := graphql(t, base, token, `{ me { openid } }`); dig(me, "data", "me", "openid") != "oImage0000000000000000000001" {
		t.Errorf("me in the container: %v", me)
	}
	if out, err := podman("healthcheck", "run", name); err != nil {
		t.Errorf("the image's healthcheck: %v\n%s", err, out)
	}

	// podman stop sends the image's STOPSIGNAL (SIGTERM), and SIGKILL (exit 137) only
	// after 25 s, past WXLOGIN_SHUTDOWN_GRACE's 20: exit status 0 means it drained and
	// exited in time.
	if out, err := podman("stop", "-t", "25", name); err != nil {
		t.Fatalf("podman stop: %v\n%s", err, out)
	}
	if out, _ := podman("inspect", name, "--format", "{{.State.ExitCode}}"); strings.TrimSpace(out) != "0" {
		t.Errorf("exit status after SIGTERM: %s, want 0\n%s", out, logs())
	}
	if l := logs(); !strings.Contains(l, "draining in-flight requests") || strings.Contains(l, token) {
		t.Errorf("the container's log lacks the drain, or shows the token:\n%s", l)
	}
}

func graphql(t *testing.T, base, token, doc string) map[string]any {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"query": doc})
	req, _ := http.NewRequest(http.MethodPost, base+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return out
}

func dig(v any, path ...string) any {
	for _, p := range path {
		m, _ := v.(map[string]any)
		v = m[p]
	}
	return v
}

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
