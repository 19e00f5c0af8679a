package main

import (
	"crypto/sha256"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// qtApp builds examples/qt-ota-app with CMake into a build directory kept in the user's
// cache (so that a second run only checks it is up to date), and returns the program. It
// skips the test without the Qt 6 development packages, and fails it instead under
// OTA_REQUIRE_TOOLS=1.
func qtApp(t *testing.T) string {
	t.Helper()
	requireTool(t, "cmake", "c++", "qtpaths6")
	// The QML modules main.qml imports (Debian's qml6-module-* packages).
	qml, err := exec.Command("qtpaths6", "--query", "QT_INSTALL_QML").Output()
	if err != nil {
		t.Fatalf("qtpaths6: %v", err)
	}
	for _, m := range []string{"QtQuick/Controls/Basic", "QtQuick/Layouts", "QtQuick/Templates", "QtQuick/Window", "QtQml/WorkerScript"} {
		if _, err := os.Stat(filepath.Join(strings.TrimSpace(string(qml)), m, "qmldir")); err != nil {
			if os.Getenv("OTA_REQUIRE_TOOLS") == "1" {
				t.Fatalf("the QML module %s is required (OTA_REQUIRE_TOOLS=1) but not installed", m)
			}
			t.Skipf("the QML module %s is not installed", m)
		}
	}
	src, err := filepath.Abs("../../examples/qt-ota-app")
	if err != nil {
		t.Fatal(err)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	build := filepath.Join(cache, "otakit-ota-tests", fmt.Sprintf("qt-ota-app-%x", sha256.Sum256([]byte(src)))[:len("qt-ota-app-")+12])
	start := time.Now()
	if _, err := os.Stat(filepath.Join(build, "CMakeCache.txt")); err != nil {
		must(t, "cmake", "-S", src, "-B", build, "-DCMAKE_BUILD_TYPE=Release")
	}
	must(t, "cmake", "--build", build, "-j2")
	t.Logf("qt-ota-app built in %v (%s)", time.Since(start).Round(time.Second), build)
	return filepath.Join(build, "qt-ota-app")
}

// testOutput returns the directory for what a test leaves to look at: $OTA_TEST_OUTPUT
// when set (kept), else a temporary directory.
func testOutput(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("OTA_TEST_OUTPUT")
	if dir == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// The colours of the progress bar of examples/qt-ota-app/main.qml.
var (
	barFill  = color.RGBA{0x00, 0xc0, 0x00, 0xff}
	barTrack = color.RGBA{0x30, 0x30, 0x30, 0xff}
)

// TestQtApp (acceptance 6): the Qt example builds, and run offscreen against the daemon on
// a private bus with --autotest, it updates the device through the daemon (v2 is the
// default as the real ostree sees it) and saves a screenshot taken in the middle of the
// download. The app writes the value its progress bar held when it grabbed the window;
// the test checks it is between 1 and 99 and measures the bar in the image itself: the
// share of its length drawn in the fill colour is that value.
func TestQtApp(t *testing.T) {
	app := qtApp(t)
	d, s := resumeDevice(t, "delta")
	// 1 MiB/s: the 3 MiB delta part takes seconds, during which the app takes its picture.
	writeFiles(t, d.sysroot, map[string]string{"etc/ota/client.yaml": "url: " + s.URL + "\nref: myos/stable\nmax-rate: 1MiB\n"})
	b := startBus(t, d)
	startDaemon(t, b, d, "--cmdline", d.cmdlineOf(t, d.commits[0]))

	shot := filepath.Join(testOutput(t), "qt-ota-app-download.png")
	os.Remove(shot)
	cmd := exec.Command(app, "--autotest", "--screenshot", shot)
	cmd.Env = append(b.env(), "QT_QPA_PLATFORM=offscreen", "QT_QUICK_BACKEND=software", "XDG_RUNTIME_DIR="+t.TempDir())
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	out, err := cmd.Output()
	t.Logf("qt-ota-app ran %v: %s", time.Since(start).Round(time.Millisecond), out)
	if err != nil {
		t.Fatalf("qt-ota-app --autotest: %v\n%s%s", err, out, stderr.String())
	}
	if !strings.Contains(string(out), "Finished(update, true, installed: "+d.commits[1]+".0 2.0") {
		t.Errorf("qt-ota-app printed %q", out)
	}
	checkUpdated(t, d)

	info := map[string]string{}
	for _, line := range strings.Split(readFile(t, shot+".txt"), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			info[k] = v
		}
	}
	value, err := strconv.ParseFloat(info["value"], 64)
	if err != nil || value < 1 || value > 99 || info["phase"] != "download" {
		t.Fatalf("the screenshot shows the progress bar at %q in phase %q, want 1 to 99 in download", info["value"], info["phase"])
	}
	f, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", shot, err)
	}
	fill, track := measureBar(img)
	t.Logf("screenshot %s: %v, bar at %.1f%% (the app says %.1f%%): %d pixels filled, %d not", shot, img.Bounds().Size(), 100*float64(fill)/float64(fill+track), value, fill, track)
	if fill+track < 100 {
		t.Fatalf("no progress bar in the screenshot (%d fill and %d track pixels on a row)", fill, track)
	}
	if drawn := 100 * float64(fill) / float64(fill+track); drawn < 1 || drawn > 99 || drawn-value > 2 || value-drawn > 2 {
		t.Errorf("the bar drawn is %.1f%% full, the app says %.1f%%", drawn, value)
	}
}

// measureBar returns, on the row of img with the most pixels of the bar's colours, how
// many are filled and how many are the track.
func measureBar(img image.Image) (fill, track int) {
	r := img.Bounds()
	for y := r.Min.Y; y < r.Max.Y; y++ {
		var f, tr int
		for x := r.Min.X; x < r.Max.X; x++ {
			switch color.RGBAModel.Convert(img.At(x, y)) {
			case barFill:
				f++
			case barTrack:
				tr++
			}
		}
		if f+tr > fill+track {
			fill, track = f, tr
		}
	}
	return fill, track
}
