package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wxlogin/wxlogin/internal/wechat/fakewechat"
)

// screenshot is where TestPlaygroundInBrowser keeps what the browser showed last.
const screenshot = "test-artifacts/playground.png"

// skipNote is where TestPlaygroundInBrowser says why it skipped, for `make test` to
// repeat on its last lines (go test shows a skip only with -v).
const skipNote = "test-artifacts/browser-test-skipped.txt"

// TestPlaygroundInBrowser serves in dev mode and has headless Chromium use the playground
// as a person would (internal/playground/web/browser-test.mjs): the page loads nothing
// from another host, the ready login mutation runs, its token goes into the headers
// editor, and `me` shows alice's openid.
func TestPlaygroundInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser")
	}
	node, chromium := browserTools(t)
	script, err := filepath.Abs("internal/playground/web/browser-test.mjs")
	if err != nil {
		t.Fatal(err)
	}
	shot, err := filepath.Abs(screenshot)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(shot)
	if err := os.MkdirAll(filepath.Dir(shot), 0o755); err != nil {
		t.Fatal(err)
	}

	s := start(t, map[string]string{"WXLOGIN_DATABASE_URL": "sqlite://" + filepath.Join(t.TempDir(), "wxlogin.db")})

	// A guard against a hung browser, not a timing assertion: the script's own waits are
	// a minute each.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, script, s.base, fakewechat.OpenIDFor("wxdevfake0000001", "alice"), shot)
	cmd.Env = append(os.Environ(), "CHROMIUM="+chromium)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) } // lets Playwright close Chromium
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		t.Log(line)
	}
	if err != nil {
		t.Fatalf("the browser test failed (%v); the page as it was: %s", err, shot)
	}
}

// browserTools finds node, Chromium and the test's npm packages. Without them the test
// skips on a developer's machine, saying how to get them, and fails under CI=true.
func browserTools(t *testing.T) (node, chromium string) {
	t.Helper()
	os.Remove(skipNote)
	missing := func(what, install string) {
		t.Helper()
		msg := what + " is missing for the playground's browser test; install it with: " + install
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		if os.MkdirAll(filepath.Dir(skipNote), 0o755) == nil {
			os.WriteFile(skipNote, []byte("SKIPPED the playground's browser test (TestPlaygroundInBrowser): "+msg+"\n"), 0o644)
		}
		t.Skip(msg)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing("node", "apt-get install nodejs npm")
	}
	chromium = os.Getenv("CHROMIUM")
	if chromium == "" {
		if chromium, err = exec.LookPath("chromium"); err != nil {
			missing("chromium", "apt-get install chromium")
		}
	}
	if _, err := os.Stat("internal/playground/web/node_modules/playwright-core"); err != nil {
		missing("playwright-core", "npm ci --prefix internal/playground/web")
	}
	return node, chromium
}
