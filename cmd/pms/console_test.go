package main

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/pms/pms/pkg/platform/db/dbtest"
)

// axeSource is axe-core (npm package axe-core 4.14.1, MPL-2.0, LICENSE beside it), injected
// by the browser test into every screen.
//
//go:embed testdata/axe/axe.min.js
var axeSource string

// consoleArtifactsEnv names a folder where TestConsole saves a screenshot of every screen it
// checks (make screenshots); without it, screenshots are saved only when the test fails,
// under consoleArtifactsDefault.
const (
	consoleArtifactsEnv     = "PMS_CONSOLE_SCREENSHOTS"
	consoleArtifactsDefault = "testdata/artifacts/console"
)

// chromiumPath finds Debian's chromium: the binary itself rather than its shell launcher.
func chromiumPath(t *testing.T) string {
	for _, p := range []string{"/usr/lib/chromium/chromium"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	p, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("TestConsole needs Debian's chromium (apt-get install chromium; .ci/run installs it)")
	}
	return p
}

// browser is one headless Chromium for the test; each user gets a browser context of its own
// (its own cookies), like a separate browser profile.
type browser struct {
	t       *testing.T
	alloc   context.Context
	root    context.Context
	gw      string
	mu      sync.Mutex
	dialogs []string
	errors  []string
	console map[string]http.Header // console responses seen: URL → headers
	shots   string                 // folder for every screen's screenshot, "" unless asked
}

func newBrowser(t *testing.T, gw string) *browser {
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 900),
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	root, cancelRoot := chromedp.NewContext(alloc)
	if err := chromedp.Do(root); err != nil {
		cancelRoot()
		cancelAlloc()
		t.Fatalf("start chromium: %v", err)
	}
	t.Cleanup(func() { cancelRoot(); cancelAlloc() })
	return &browser{t: t, alloc: alloc, root: root, gw: gw, console: map[string]http.Header{}, shots: os.Getenv(consoleArtifactsEnv)}
}

// user is one browser context (a person at a screen).
type user struct {
	b    *browser
	name string
	ctx  context.Context
	// transferred counts the bytes the tab received (encoded, headers included); requests
	// counts the requests sent per URL path.
	transferred int64
	requests    map[string]int
}

// sent returns how many requests the tab has sent to path.
func (u *user) sent(path string) int {
	u.b.mu.Lock()
	defer u.b.mu.Unlock()
	return u.requests[path]
}

// waitSent waits until the tab has sent at least n requests to path.
func (u *user) waitSent(path string, n int) {
	u.b.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for u.sent(path) < n {
		if time.Now().After(deadline) {
			u.b.t.Fatalf("%s: %d requests to %s, want %d", u.name, u.sent(path), path, n)
		}
		time.Sleep(20 * time.Millisecond) // polling a counter under a deadline, not a fixed wait
	}
}

func (b *browser) user(name string) *user {
	var ctx context.Context
	u := &user{b: b, name: name, requests: map[string]int{}}
	listen := func(ev any) {
		b.mu.Lock()
		defer b.mu.Unlock()
		switch e := ev.(type) {
		case *network.EventLoadingFinished:
			u.transferred += int64(e.EncodedDataLength)
		case *network.EventRequestWillBeSent:
			if r, err := url.Parse(e.Request.URL); err == nil {
				u.requests[r.Path]++
			}
		case *page.EventJavascriptDialogOpening:
			b.dialogs = append(b.dialogs, name+": "+e.Message)
			go func() { _, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{}) }()
		case *runtime.EventExceptionThrown:
			msg := e.ExceptionDetails.Text
			if e.ExceptionDetails.Exception != nil {
				msg += " " + e.ExceptionDetails.Exception.Description
			}
			b.errors = append(b.errors, name+": "+msg)
		case *network.EventResponseReceived:
			u, err := url.Parse(e.Response.URL)
			if err == nil && strings.HasPrefix(e.Response.URL, b.gw) && (u.Path == "/" || strings.HasPrefix(u.Path, "/console/")) {
				h := http.Header{}
				for k, v := range e.Response.Headers {
					h.Set(k, fmt.Sprint(v))
				}
				b.console[e.Response.URL] = h
			}
		}
	}
	ctx, cancel := chromedp.NewContext(b.root, chromedp.WithNewBrowserContext(), chromedp.WithListener(listen))
	b.t.Cleanup(cancel)
	// The first run opens the tab, which lives as long as that run's context: no deadline there.
	if err := chromedp.Do(ctx); err != nil {
		b.t.Fatalf("%s: open a tab: %v", name, err)
	}
	// The page's clock can be moved ahead (window.__skew, ms) to bring the access token's
	// expiry near without waiting 15 minutes; the server's clock is untouched.
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
		Source: `window.__skew = 0; { const now = Date.now; Date.now = () => now() + window.__skew; }`}); err != nil {
		b.t.Fatalf("%s: clock script: %v", name, err)
	}
	u.ctx = ctx
	u.run("open the console", chromedp.Navigate(b.gw+"/"))
	b.t.Cleanup(func() {
		if b.t.Failed() {
			u.screenshot(filepath.Join(consoleArtifactsDefault, "failed-"+name+".png"))
		}
	})
	return u
}

// run runs actions with a deadline; a failure fails the test with what was being done.
func (u *user) run(what string, actions ...chromedp.Action[chromedp.Void]) {
	u.b.t.Helper()
	ctx, cancel := context.WithTimeout(u.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		u.b.t.Fatalf("%s: %s: %v (page: %s)", u.name, what, err, u.text())
	}
}

// eval evaluates a JavaScript expression and returns its value.
func eval[T any](u *user, expr string) T {
	u.b.t.Helper()
	ctx, cancel := context.WithTimeout(u.ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		u.b.t.Fatalf("%s: evaluate %.60s: %v (page: %s)", u.name, expr, err, u.text())
	}
	return v
}

// text is the page's main text, for failure messages.
func (u *user) text() string {
	ctx, cancel := context.WithTimeout(u.ctx, 3*time.Second)
	defer cancel()
	s, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`(document.getElementById('main')||document.body).innerText.slice(0, 600)`))
	return s
}

// waitJS polls a JavaScript condition until it is true (deadline 20 s).
func (u *user) waitJS(what, cond string) {
	u.b.t.Helper()
	ctx, cancel := context.WithTimeout(u.ctx, 25*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](cond, chromedp.WithPollingTimeout(20*time.Second), chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
		u.b.t.Fatalf("%s: %s: %v (page: %s)", u.name, what, err, u.text())
	}
}

// waitText waits until the main area contains s.
func (u *user) waitText(s string) {
	u.b.t.Helper()
	q, _ := json.Marshal(s)
	u.waitJS("wait for "+s, `document.getElementById('main').textContent.includes(`+string(q)+`)`)
}

// go opens a console route (the part after #).
func (u *user) goTo(route, until string) {
	u.b.t.Helper()
	// The main area is emptied first, so until is judged on the new screen, not the last one.
	eval[bool](u, `document.getElementById('main').replaceChildren(), location.hash === '`+route+`' ?
		dispatchEvent(new HashChangeEvent('hashchange')) : (location.hash = '`+route+`', true)`)
	u.waitJS("open "+route, until)
}

// fill sets form fields by CSS selector.
func (u *user) fill(pairs ...string) {
	u.b.t.Helper()
	var actions []chromedp.Action[chromedp.Void]
	for i := 0; i+1 < len(pairs); i += 2 {
		actions = append(actions, chromedp.SetValue(chromedp.CSS(pairs[i]), pairs[i+1]))
	}
	u.run("fill "+pairs[0], actions...)
}

// click clicks the element sel finds. A screen that re-renders (a list reloaded after a
// change) can replace the node between the query and the click, which the DevTools protocol
// reports as a node it cannot find: the click is then tried again on the new node, until a
// deadline.
func (u *user) click(sel string) {
	u.b.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(u.ctx, 20*time.Second)
		err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(sel)))
		cancel()
		if err == nil {
			return
		}
		if !strings.Contains(err.Error(), "Could not find node with given id") || time.Now().After(deadline) {
			u.b.t.Fatalf("%s: click %s: %v (page: %s)", u.name, sel, err, u.text())
		}
		time.Sleep(50 * time.Millisecond) // poll interval of a deadline-bound retry
	}
}

// signIn types the credentials with the keyboard and waits for the navigation of a signed-in user.
func (u *user) signIn(email, password string) {
	u.b.t.Helper()
	u.waitJS("sign-in form", `!!document.querySelector('form#signin')`)
	u.run("sign in", chromedp.SendKeys(chromedp.CSS(`form#signin input[name=email]`), email),
		chromedp.SendKeys(chromedp.CSS(`form#signin input[name=password]`), password+"\r"))
	u.waitJS("signed in", `!!document.getElementById('signout')`)
}

// check runs axe-core on the current screen: 0 serious or critical violations; with
// PMS_CONSOLE_SCREENSHOTS it also saves the screen as name.png.
func (u *user) check(name string) {
	u.b.t.Helper()
	if eval[bool](u, `typeof axe === 'undefined'`) {
		// The DevTools protocol compiles the script itself: the page's CSP (no eval) is not asked.
		eval[any](u, axeSource+";\n0")
	}
	bad := eval[[]string](u, `axe.run(document, {resultTypes: ['violations']}).then(r => r.violations
			.filter(v => v.impact === 'serious' || v.impact === 'critical')
			.map(v => v.id + ' (' + v.impact + '): ' + v.nodes.map(n => n.target.join(' ')).join(', ')))`)
	if len(bad) > 0 {
		u.b.t.Errorf("%s: axe finds serious/critical violations on %s: %v", u.name, name, bad)
	}
	if u.b.shots != "" {
		u.screenshot(filepath.Join(u.b.shots, name+".png"))
	}
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func (u *user) screenshot(path string) {
	ctx, cancel := context.WithTimeout(u.ctx, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		u.b.t.Logf("screenshot %s: %v", path, err)
		return
	}
	_ = os.MkdirAll(filepath.Dir(path), 0o755)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		u.b.t.Logf("screenshot %s: %v", path, err)
	}
}

// loginToken logs in over the API (for the server-side checks of the test).
func loginToken(t *testing.T, gw, email, password string) string {
	t.Helper()
	resp, b := call(t, "POST", gw+"/auth/login", "", `{"email":"`+email+`","password":"`+password+`"}`)
	var p struct{ Token string }
	if resp.StatusCode != 200 || json.Unmarshal(b, &p) != nil {
		t.Fatalf("login %s: %d %s", email, resp.StatusCode, b)
	}
	return p.Token
}

// TestConsole is issue 18's browser test: a real headless Chromium (Debian's) driven over
// the DevTools protocol against `pms all` on PostgreSQL, through the gateway's console. The
// journey of the issue (admin creates users; a clinician registers a patient, sees the field
// error of a bad date, finds, edits; a second browser edits the same patient; the conflict
// screen and re-apply; history; the billing user invoices two lines, issues, pays; the
// dashboard shows it; sign-out revokes the refresh cookie), hostile names rendered as text
// with no dialog, the roles (analyst, billing, direct URLs to forbidden screens), axe-core on
// every screen, a reload that stays signed in, and the CSP header on every console response.
func TestConsole(t *testing.T) {
	a, _ := startPMS(t, allAddrs, allArgs(t, dbtest.PostgresDatabase(t), "--rate-limit=0", "--gateway-client-rate=0")...)
	gw := "http://" + a["gateway/http"]
	b := newBrowser(t, gw)

	// Admin: sign in (keyboard), create the clinician, the billing user and the analyst.
	admin := b.user("admin")
	admin.waitJS("sign-in page", `!!document.querySelector('form#signin')`)
	b.mu.Lock()
	firstLoad := admin.transferred
	b.mu.Unlock()
	t.Logf("FIGURES console first load (sign-in page): %d bytes transferred", firstLoad)
	if firstLoad <= 0 || firstLoad >= 150*1024 {
		t.Errorf("the sign-in page's first load transferred %d bytes, want under 150 KB", firstLoad)
	}
	admin.check("signin")
	admin.signIn(allAdminEmail, adminPassword)
	admin.goTo("#/admin/users", `!!document.querySelector('form#create-user')`)
	for _, role := range []string{"clinician", "billing", "analyst", "privacy"} {
		admin.fill(`form#create-user input[name=email]`, role+"@console.example.org",
			`form#create-user select[name=role]`, role, `form#create-user input[name=password]`, matrixPassword)
		admin.click(`form#create-user button[type=submit]`)
		admin.waitJS("user "+role+" listed", `document.getElementById('users')?.textContent.includes('`+role+`@console.example.org')`)
	}
	// An invitation (no password) shows its one-time token; then disable that user.
	admin.fill(`form#create-user input[name=email]`, "invitee@console.example.org", `form#create-user select[name=role]`, "clinician")
	admin.click(`form#create-user button[type=submit]`)
	admin.waitJS("invitation", `document.getElementById('invite')?.textContent.includes('invitee@console.example.org')`)
	admin.check("users")
	admin.fill(`select[aria-label="Role of invitee@console.example.org"]`, "billing")
	// The status says "Role changed" before the list is loaded again and re-rendered; a click
	// on Disable in between could land on the old table as it is replaced (and its layout
	// shifts: the invitation note goes), and be lost. So the old table is marked, and the
	// next click waits for a new one.
	eval[bool](admin, `document.getElementById('users').dataset.old = '1', true`)
	admin.click(`button[aria-label="Save role: invitee@console.example.org"]`)
	admin.waitJS("role changed", `document.getElementById('status').textContent === 'Role changed' &&
		document.getElementById('users')?.dataset.old === undefined &&
		document.querySelector('select[aria-label="Role of invitee@console.example.org"]')?.value === 'billing'`)
	admin.click(`button[aria-label="Disable invitee@console.example.org"]`)
	admin.waitJS("disabled", `[...document.querySelectorAll('#users tr')].some(r => r.textContent.includes('invitee@console.example.org') && r.textContent.includes('disabled'))`)
	admin.goTo("#/admin/audit", `!!document.querySelector('#audit')`)
	admin.click(`#verify`)
	admin.waitText("Chain intact")
	admin.check("audit")

	// The clinician registers a patient: a bad date first, whose field error shows.
	clin := b.user("clinician")
	clin.signIn("clinician@console.example.org", matrixPassword)
	clin.goTo("#/patients/new", `!!document.querySelector('form#register')`)
	clin.fill(`form#register input[name=name]`, "Ada Console", `form#register input[name=email]`, "ada@console.example.org",
		`form#register input[name=address]`, "1 Main St", `form#register input[name=dateOfBirth]`, "2999-01-01")
	clin.click(`form#register button[type=submit]`)
	clin.waitJS("field error", `(() => { const e = document.querySelector('form#register input[name=dateOfBirth]');
		return e.getAttribute('aria-invalid') === 'true' && document.getElementById(e.getAttribute('aria-describedby')).textContent.length > 0 })()`)
	clin.check("register-error")
	clin.fill(`form#register input[name=dateOfBirth]`, "1985-12-10")
	clin.click(`form#register button[type=submit]`)
	clin.waitJS("patient page", `!!document.querySelector('dl#patient')`)
	id := eval[string](clin, `location.hash.split('/')[2]`)

	// Search finds the patient; open it from the results, with the keyboard alone: the screen
	// focuses its heading, Tab reaches the search box (after the register link), Enter
	// searches, Tab moves on to the result's link and Enter opens it.
	clin.goTo("#/patients", `document.activeElement?.tagName === 'H1'`)
	clin.run("tab to the search box", chromedp.KeyEvent("\t\t"))
	clin.waitJS("search box focused", `document.activeElement?.name === 'q'`)
	clin.run("type and search", chromedp.KeyEvent("ada console\r"))
	clin.waitJS("results", `document.getElementById('total')?.textContent.startsWith('1 patient')`)
	clin.check("search")
	clin.run("tab to the result", chromedp.KeyEvent("\t\t\t\t"))
	clin.waitJS("result focused", `document.activeElement?.getAttribute('href') === '#/patients/`+id+`'`)
	clin.run("open it", chromedp.KeyEvent("\r"))
	clin.waitJS("patient page", `!!document.querySelector('dl#patient')`)
	clin.check("patient")

	// Edit, then open the form again (version 2) while a second browser saves version 3.
	clin.click(`#edit-link`)
	clin.waitJS("edit form", `!!document.querySelector('form#edit')`)
	clin.fill(`form#edit input[name=address]`, "2 Second St")
	clin.click(`form#edit button[type=submit]`)
	clin.waitJS("saved", `document.querySelector('dl#patient')?.textContent.includes('2 Second St')`)
	clin.goTo("#/patients/"+id+"/edit", `!!document.querySelector('form#edit')`)
	clin.check("edit")

	other := b.user("clinician-2")
	other.signIn("clinician@console.example.org", matrixPassword)
	other.goTo("#/patients/"+id+"/edit", `!!document.querySelector('form#edit')`)
	other.fill(`form#edit input[name=email]`, "ada.other@console.example.org")
	other.click(`form#edit button[type=submit]`)
	other.waitJS("saved by the other", `document.querySelector('dl#patient')?.textContent.includes('ada.other@console.example.org')`)

	clin.fill(`form#edit input[name=name]`, "Ada Conflicted")
	clin.click(`form#edit button[type=submit]`)
	clin.waitJS("conflict screen", `!!document.getElementById('conflict')`)
	clin.waitText("ada.other@console.example.org")
	clin.check("conflict")
	clin.click(`#reapply`)
	clin.waitJS("re-applied", `!!document.querySelector('dl#patient') && document.getElementById('main').textContent.includes('Ada Conflicted') && document.getElementById('main').textContent.includes('ada.other@console.example.org')`)

	// History shows both changes, field by field.
	clin.goTo("#/patients/"+id+"/history", `!!document.getElementById('history')`)
	clin.waitJS("history diffs", `(() => { const t = document.getElementById('history').textContent;
		return t.includes('Version 4') && t.includes('Ada Conflicted') && t.includes('ada.other@console.example.org') && t.includes('2 Second St') })()`)
	clin.check("history")

	// Hostile names are text on every screen; no dialog ever opens.
	var hostileIDs []string
	for i, name := range []string{`<img src=x onerror=alert(1)>`, `"; alert(1); //`} {
		clin.goTo("#/patients/new", `!!document.querySelector('form#register')`)
		clin.fill(`form#register input[name=name]`, name, `form#register input[name=email]`, fmt.Sprintf("xss%d@console.example.org", i),
			`form#register input[name=address]`, `<script>alert(2)</script>`, `form#register input[name=dateOfBirth]`, "1970-01-01")
		clin.click(`form#register button[type=submit]`)
		if i == 1 {
			// The console sends the strict duplicate check (issue 19): the second hostile
			// name shares the first's family word ("alert"), date and address, so the
			// first is shown as a possible duplicate (as text), and confirming registers.
			clin.waitJS("possible duplicates", `document.getElementById('duplicates')?.textContent.includes(`+jsString(`<img src=x onerror=alert(1)>`)+`)`)
			clin.check("register-duplicates")
			clin.click(`#confirm-not-duplicate`)
		}
		clin.waitJS("hostile patient page", `document.querySelector('main h1')?.textContent === `+jsString(name))
		hid := eval[string](clin, `location.hash.split('/')[2]`)
		hostileIDs = append(hostileIDs, hid)
		clin.goTo("#/patients/"+hid+"/edit", `document.querySelector('form#edit input[name=name]')?.value === `+jsString(name))
		clin.goTo("#/patients/"+hid+"/history", `document.getElementById('history')?.textContent.includes(`+jsString(name)+`)`)
	}
	clin.goTo("#/patients", `!!document.querySelector('form#search')`)
	clin.fill(`form#search input[name=q]`, "alert")
	clin.click(`form#search button[type=submit]`)
	clin.waitJS("hostile results", `(() => { const t = document.getElementById('results').textContent;
		return t.includes('<img src=x onerror=alert(1)>') && t.includes('"; alert(1); //') })()`)
	clin.check("search-hostile")
	if eval[bool](clin, `!!document.querySelector('main img, main script')`) {
		t.Error("a hostile name became an element")
	}

	// Break-glass: a restricted record shows the reason form; the grant opens the record.
	adminToken := loginToken(t, gw, allAdminEmail, adminPassword)
	if resp, body := call(t, "PUT", gw+"/api/patients/"+hostileIDs[1]+"/confidentiality", adminToken, `{"confidentiality":"restricted"}`); resp.StatusCode != 200 {
		t.Fatalf("restrict: %d %s", resp.StatusCode, body)
	}
	clin.goTo("#/patients/"+hostileIDs[1], `!!document.querySelector('form#break-glass')`)
	clin.check("break-glass")
	clin.fill(`form#break-glass textarea[name=reason]`, "too short")
	clin.click(`form#break-glass button[type=submit]`)
	clin.waitJS("reason field error", `document.querySelector('form#break-glass textarea[name=reason]').getAttribute('aria-invalid') === 'true'`)
	clin.fill(`form#break-glass textarea[name=reason]`, "unconscious patient in A&E, no relatives")
	clin.click(`form#break-glass button[type=submit]`)
	clin.waitJS("record after the grant", `document.querySelector('main h1')?.textContent === `+jsString(`"; alert(1); //`)+` && !!document.querySelector('dl#patient')`)

	// The billing user: no edit link, the edit URL is not allowed (and the API refuses it);
	// a draft of two lines in BHD (three decimals), issue, pay the prefilled amount due.
	bill := b.user("billing")
	bill.signIn("billing@console.example.org", matrixPassword)
	bill.goTo("#/patients/"+hostileIDs[0], `!!document.querySelector('dl#patient')`)
	bill.goTo("#/patients/"+id, `document.querySelector('main h1')?.textContent === 'Ada Conflicted' && !!document.getElementById('new-invoice')`)
	if eval[bool](bill, `!!document.getElementById('edit-link')`) {
		t.Error("the billing user sees the edit link")
	}
	bill.goTo("#/patients/"+id+"/edit", `!!document.getElementById('not-allowed')`)
	bill.check("not-allowed")
	billToken := loginToken(t, gw, "billing@console.example.org", matrixPassword)
	if resp, body := call(t, "PUT", gw+"/api/patients/"+id, billToken, `{"name":"X","email":"x@example.org","address":"x","dateOfBirth":"1980-01-01"}`); resp.StatusCode != 403 {
		t.Errorf("billing PUT a patient: %d %s", resp.StatusCode, body)
	}
	bill.goTo("#/patients/"+id+"/invoices/new", `!!document.querySelector('form#invoice')`)
	bill.fill(`form#invoice select[name=currency]`, "BHD",
		`form#invoice input[name="lines[0].description"]`, "Consultation", `form#invoice input[name="lines[0].quantity"]`, "2",
		`form#invoice input[name="lines[0].unitAmount"]`, "1.250")
	bill.click(`#add-line`)
	bill.fill(`form#invoice input[name="lines[1].description"]`, "Blood test", `form#invoice input[name="lines[1].unitAmount"]`, "0.500")
	bill.check("invoice-new")
	// A double submit (two submissions before the first answer) creates one invoice: both
	// carry the same Idempotency-Key.
	eval[bool](bill, `(() => { const f = document.querySelector('form#invoice'); f.requestSubmit(); f.requestSubmit(); return true })()`)
	bill.waitJS("draft", `document.getElementById('invoice-status')?.textContent === 'draft'`)
	invoiceID := eval[string](bill, `location.hash.split('/')[2]`)
	bill.click(`#issue`)
	bill.waitJS("issued", `document.getElementById('invoice-status')?.textContent === 'open' && !!document.querySelector('form#pay')`)
	if due := eval[string](bill, `document.querySelector('form#pay input[name=amount]').value`); due != "3.000" {
		t.Errorf("amount due prefilled as %q, want 3.000 (BHD has three decimals)", due)
	}
	bill.check("invoice")
	bill.click(`form#pay button[type=submit]`)
	bill.waitJS("paid", `document.getElementById('invoice-status')?.textContent === 'paid'`)
	// JPY has no decimals: "12.5" is refused in the form; a draft of 1200 yen is voided.
	bill.goTo("#/patients/"+id+"/invoices/new", `!!document.querySelector('form#invoice')`)
	bill.fill(`form#invoice select[name=currency]`, "JPY", `form#invoice input[name="lines[0].description"]`, "Copy of records",
		`form#invoice input[name="lines[0].unitAmount"]`, "12.5")
	bill.click(`form#invoice button[type=submit]`)
	bill.waitJS("JPY decimals refused", `document.querySelector('form#invoice input[name="lines[0].unitAmount"]').getAttribute('aria-invalid') === 'true'`)
	bill.fill(`form#invoice input[name="lines[0].unitAmount"]`, "1200")
	bill.click(`form#invoice button[type=submit]`)
	bill.waitJS("JPY draft", `document.getElementById('invoice-status')?.textContent === 'draft' && document.getElementById('main').textContent.includes('1,200')`)
	bill.click(`#void`)
	bill.waitJS("voided", `document.getElementById('invoice-status')?.textContent === 'void'`)
	bill.goTo("#/patients/"+id, `document.getElementById('invoices')?.textContent.includes('paid')`)
	bill.check("patient-billing")
	resp, body := call(t, "GET", gw+"/api/billing/invoices?patientId="+id, billToken, "")
	var invoices []struct {
		ID, Status, Currency string
		Subtotal, AmountPaid int64
	}
	// One BHD invoice (the double submit made one), paid in full; the JPY one void.
	if resp.StatusCode != 200 || json.Unmarshal(body, &invoices) != nil || len(invoices) != 2 {
		t.Fatalf("invoices of the patient: %d %s", resp.StatusCode, body)
	}
	for _, inv := range invoices {
		if inv.Currency == "BHD" && (inv.ID != invoiceID || inv.Subtotal != 3000 || inv.AmountPaid != 3000 || inv.Status != "paid") ||
			inv.Currency == "JPY" && (inv.Subtotal != 1200 || inv.Status != "void") || inv.Currency != "BHD" && inv.Currency != "JPY" {
			t.Errorf("invoice %+v (%s)", inv, body)
		}
	}

	// The dashboard shows the registrations and the payment, and a new registration appears
	// without a reload (polling).
	admin.goTo("#/dashboard", `!!document.getElementById('summary')`)
	// One registration went ahead with a possible duplicate (the second hostile name).
	admin.waitJS("dashboard figures", `+document.getElementById('registered')?.textContent === 3 && +document.getElementById('paid')?.textContent >= 1 &&
		+document.getElementById('duplicates')?.textContent === 1`)
	admin.check("dashboard")
	if resp, body := call(t, "POST", gw+"/api/patients", adminToken, `{"name":"Live Update","email":"live@console.example.org","address":"3 Main St","dateOfBirth":"1990-01-01"}`); resp.StatusCode != 201 {
		t.Fatalf("create: %d %s", resp.StatusCode, body)
	}
	admin.waitJS("live update", `+document.getElementById('registered')?.textContent === 4`)

	// The analyst sees the dashboard only; patients are not allowed, and the API agrees.
	analyst := b.user("analyst")
	analyst.signIn("analyst@console.example.org", matrixPassword)
	analyst.waitJS("analyst home", `location.hash === '#/dashboard' && document.getElementById('nav').querySelectorAll('a').length === 1`)
	// A network failure shows a retry, never a blank page; the retry recovers.
	block := func(patterns ...string) {
		var p []*network.BlockPattern
		for _, u := range patterns {
			p = append(p, &network.BlockPattern{URLPattern: u, Block: true})
		}
		if _, err := chromedp.Call(analyst.ctx, network.SetBlockedURLs, network.SetBlockedURLsParams{URLPatterns: p}); err != nil {
			t.Fatal(err)
		}
	}
	block(gw + "/api/analytics/*")
	analyst.goTo("#/dashboard", `document.querySelector('#summary [role=alert] button')?.textContent === 'Retry'`)
	analyst.check("network-failure")
	block()
	analyst.click(`#summary [role=alert] button`)
	analyst.waitJS("recovered", `!!document.getElementById('registered')`)

	// Only input refreshes a session: with the token two minutes from expiry (the page's
	// clock moved on 14 minutes), the dashboard's polling does not refresh it; a key press does.
	refreshes, polls := analyst.sent("/auth/refresh"), analyst.sent("/api/analytics/summary")
	eval[bool](analyst, `(window.__skew = 14 * 60 * 1000, true)`)
	analyst.waitSent("/api/analytics/summary", polls+2)
	if n := analyst.sent("/auth/refresh"); n != refreshes {
		t.Errorf("an idle dashboard refreshed its session %d times", n-refreshes)
	}
	analyst.run("a key press", chromedp.KeyEvent("x"))
	analyst.waitSent("/auth/refresh", refreshes+1)
	analyst.goTo("#/patients", `!!document.getElementById('not-allowed')`)
	analyst.goTo("#/admin/users", `!!document.getElementById('not-allowed')`)
	if resp, body := call(t, "POST", gw+"/api/patients/_search", loginToken(t, gw, "analyst@console.example.org", matrixPassword), `{"q":"ada"}`); resp.StatusCode != 403 {
		t.Errorf("analyst search: %d %s", resp.StatusCode, body)
	}

	// A reload stays signed in (the refresh cookie), with the access token only in memory.
	clin.run("reload", chromedp.Reload())
	clin.waitJS("still signed in", `!!document.getElementById('signout')`)
	if stored := eval[string](clin, `JSON.stringify(localStorage) + JSON.stringify(sessionStorage)`); strings.Contains(stored, "eyJ") {
		t.Errorf("a token is in web storage: %s", stored)
	}

	// Sign-out revokes: the old refresh cookie no longer works.
	cookies, err := chromedp.Call(bill.ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{gw + "/auth/refresh"}})
	if err != nil {
		t.Fatal(err)
	}
	var refresh *network.Cookie
	for _, c := range cookies.Cookies {
		if c.Name == "pms_refresh" {
			refresh = c
		}
	}
	if refresh == nil || !refresh.HTTPOnly || refresh.SameSite != network.CookieSameSiteStrict || refresh.Path != "/auth" {
		t.Fatalf("refresh cookie = %+v", refresh)
	}
	bill.click(`#signout`)
	bill.waitJS("signed out", `!!document.querySelector('form#signin')`)
	resp, body = call(t, "POST", gw+"/auth/refresh", "", "", "X-PMS-Refresh-Cookie", "1", "Cookie", "pms_refresh="+refresh.Value)
	if resp.StatusCode != 401 {
		t.Errorf("refresh with the signed-out cookie: %d %s", resp.StatusCode, body)
	}

	// The MFA step: the privacy officer has a TOTP factor; the password leads to the code form.
	privToken := loginToken(t, gw, "privacy@console.example.org", matrixPassword)
	resp, body = call(t, "POST", gw+"/auth/mfa/totp", privToken, "")
	var enrolment struct{ Secret string }
	if resp.StatusCode != 201 || json.Unmarshal(body, &enrolment) != nil {
		t.Fatalf("enrol: %d %s", resp.StatusCode, body)
	}
	if resp, body := call(t, "POST", gw+"/auth/mfa/totp/confirm", privToken, `{"code":"`+totpNow(t, enrolment.Secret, 0)+`"}`); resp.StatusCode != 200 {
		t.Fatalf("confirm: %d %s", resp.StatusCode, body)
	}
	priv := b.user("privacy")
	priv.waitJS("sign-in form", `!!document.querySelector('form#signin')`)
	priv.run("password", chromedp.SendKeys(chromedp.CSS(`form#signin input[name=email]`), "privacy@console.example.org"),
		chromedp.SendKeys(chromedp.CSS(`form#signin input[name=password]`), matrixPassword+"\r"))
	priv.waitJS("MFA step", `!!document.querySelector('form#mfa')`)
	priv.check("mfa")
	priv.run("code", chromedp.SendKeys(chromedp.CSS(`form#mfa input[name=code]`), totpNow(t, enrolment.Secret, 30*time.Second)+"\r"))
	priv.waitJS("privacy home", `!!document.getElementById('signout') && location.hash === '#/admin/audit' && document.getElementById('nav').querySelectorAll('a').length === 1`)
	priv.goTo("#/patients/"+id, `!!document.getElementById('not-allowed')`)

	// Lock-out: after the account's failed attempts, the sign-in shows the wait.
	stranger := b.user("stranger")
	stranger.waitJS("sign-in form", `!!document.querySelector('form#signin')`)
	for i := 0; ; i++ {
		stranger.fill(`form#signin input[name=email]`, "nobody@console.example.org", `form#signin input[name=password]`, fmt.Sprintf("wrong password %d", i))
		stranger.click(`form#signin button[type=submit]`)
		stranger.waitJS("answer", `!document.querySelector('form#signin button').disabled && !!document.querySelector('main [role=alert]')`)
		if strings.Contains(stranger.text(), "Try again in") {
			break
		}
		if i == 10 {
			t.Fatalf("no lock-out after %d failures: %s", i+1, stranger.text())
		}
	}
	stranger.check("locked-out")

	// Delete with confirmation; the record then shows as deleted (410).
	clin.goTo("#/patients/"+hostileIDs[0], `!!document.getElementById('delete')`)
	clin.click(`#delete`)
	clin.waitJS("confirmation", `!!document.getElementById('confirm-delete')`)
	clin.check("delete-confirm")
	clin.click(`#confirm-delete`)
	clin.waitJS("deleted", `!!document.getElementById('deleted')`)

	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.dialogs) > 0 {
		t.Errorf("dialogs opened: %v", b.dialogs)
	}
	if len(b.errors) > 0 {
		t.Errorf("script errors: %v", b.errors)
	}
	if len(b.console) < 8 {
		t.Errorf("only %d console responses seen", len(b.console))
	}
	for u, h := range b.console {
		if h.Get("Content-Security-Policy") == "" || h.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: console response without CSP/nosniff: %v", u, h)
		}
	}
}
