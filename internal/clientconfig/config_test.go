package clientconfig

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// writeFiles writes files (path relative to root: content) under root.
func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for p, data := range files {
		p = filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestLoad: client.yaml, else the one remote of remotes.d; paths relative to the sysroot.
func TestLoad(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  Config // paths relative to the sysroot; Source too
	}{
		{"yaml, defaults", map[string]string{"etc/ota/client.yaml": "url: https://u.example/repo\nref: myos/stable\n"},
			Config{Source: "/etc/ota/client.yaml", URL: "https://u.example/repo", Ref: "myos/stable",
				TrustedKeys: DefaultTrustedKeys, SignVerify: true, BootCounter: DefaultBootCounter}},
		{"yaml, everything", map[string]string{"etc/ota/client.yaml": "url: https://u.example/repo\nref: r\n" +
			"trusted-keys: /keys\ntls:\n  ca: /ca.pem\n  cert: /c.pem\n  key: /k.pem\nmax-rate: 2MiB\n" +
			"boot-counter: /boot/efi/ota-state.txt\nallow-downgrade: true\n",
			"etc/ostree/remotes.d/x.conf": "[remote \"x\"]\nurl=http://ignored\n"},
			Config{Source: "/etc/ota/client.yaml", URL: "https://u.example/repo", Ref: "r", TrustedKeys: "/keys",
				SignVerify: true, TLS: TLS{"/ca.pem", "/c.pem", "/k.pem"}, MaxRate: 2 << 20,
				BootCounter: "/boot/efi/ota-state.txt", AllowDowngrade: true}},
		{"remotes.d", map[string]string{"etc/ostree/remotes.d/myos.conf": "# from the image\n[remote \"myos\"]\n" +
			"url = https://u.example/repo\nsign-verify=ed25519;\ngpg-verify=false\ntls-ca-path=/etc/ca.pem\n" +
			"tls-client-cert-path=/c.pem\ntls-client-key-path=/k.pem\n\n[core]\nx=1\n"},
			Config{Source: "/etc/ostree/remotes.d/myos.conf", Remote: "myos", URL: "https://u.example/repo",
				TrustedKeys: DefaultTrustedKeys, SignVerify: true, TLS: TLS{"/etc/ca.pem", "/c.pem", "/k.pem"},
				BootCounter: DefaultBootCounter}},
		{"yaml, boot counter only", map[string]string{"etc/ota/client.yaml": "boot-counter: /boot/fw/ota-state.txt\n"},
			Config{Source: "/etc/ota/client.yaml", TrustedKeys: DefaultTrustedKeys, SignVerify: true, BootCounter: "/boot/fw/ota-state.txt"}},
		{"remotes.d, no signatures", map[string]string{"etc/ostree/remotes.d/a.conf": "[remote \"a\"]\nurl=http://h/r\nsign-verify=false\n"},
			Config{Source: "/etc/ostree/remotes.d/a.conf", Remote: "a", URL: "http://h/r",
				TrustedKeys: DefaultTrustedKeys, BootCounter: DefaultBootCounter}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			writeFiles(t, root, tc.files)
			got, err := Load(root, "")
			if err != nil {
				t.Fatal(err)
			}
			want := tc.want
			want.Daemon = DefaultDaemon()
			for _, p := range []*string{&want.Source, &want.TrustedKeys, &want.BootCounter, &want.TLS.CA, &want.TLS.Cert, &want.TLS.Key} {
				if *p != "" {
					*p = filepath.Join(root, *p)
				}
			}
			if !reflect.DeepEqual(*got, want) {
				t.Errorf("got  %+v\nwant %+v", *got, want)
			}
		})
	}
}

// TestLoadErrors: each mistake is one line naming the file and, where there is one, the
// line.
func TestLoadErrors(t *testing.T) {
	const yamlFile, remote = "etc/ota/client.yaml", "etc/ostree/remotes.d/r.conf"
	for _, tc := range []struct {
		name, file, data, want string
	}{
		{"unknown key", yamlFile, "url: http://h\nurls: x\n", "client.yaml:2: unknown key \"urls\" (want allow-downgrade, boot-counter, daemon, max-rate, ref, tls, trusted-keys, url)"},
		{"unknown tls key", yamlFile, "url: http://h\ntls:\n  ca: x\n  pem: y\n", "client.yaml:4: unknown key \"pem\" (want ca, cert, key)"},
		{"repeated key", yamlFile, "url: http://h\nref: a\nref: b\n", "client.yaml:3: key \"ref\" already defined at line 2"},
		{"not a mapping", yamlFile, "- url\n", "client.yaml:1: want a mapping"},
		{"tls not a mapping", yamlFile, "url: http://h\ntls: x\n", "client.yaml:2: want a mapping"},
		{"bad bool", yamlFile, "url: http://h\nallow-downgrade: maybe\n", "client.yaml:2: want true or false"},
		{"number as string", yamlFile, "url: http://h\nref: 12\n", "client.yaml:2: want a string, not 12"},
		{"null string", yamlFile, "url:\n", "client.yaml:1: want a string"},
		{"bad rate", yamlFile, "url: http://h\nmax-rate: fast\n", "client.yaml:2: invalid rate \"fast\""},
		{"syntax", yamlFile, "url: [\n", "client.yaml:1: did not find expected node content"},
		{"empty", yamlFile, "", "client.yaml: empty configuration"},
		{"no remote", remote, "[core]\nrepo_version=1\n", "no configuration: neither "},
		{"remote without url", remote, "[remote \"r\"]\nsign-verify=true\n", "r.conf:1: remote \"r\" has no url"},
		{"bad line", remote, "[remote \"r\"]\nurl http://h\n", "r.conf:2: want key=value, got \"url http://h\""},
		{"bad group", remote, "[remote \"r\"\n", "r.conf:1: invalid group header"},
		{"bad sign-verify", remote, "[remote \"r\"]\nurl=http://h\nsign-verify=gpg\n", "r.conf:3: sign-verify=gpg: want true, false or a list with ed25519"},
		{"two remotes", remote, "[remote \"a\"]\nurl=http://a\n[remote \"b\"]\nurl=http://b\n", "remotes.d: 2 remotes (a in r.conf, b in r.conf): write "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			writeFiles(t, root, map[string]string{tc.file: tc.data})
			_, err := Load(root, "")
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("error %v, want one line containing %q", err, tc.want)
			}
		})
	}
}

func TestParseRate(t *testing.T) {
	for s, want := range map[string]int64{"0": 0, "1000": 1000, "512K": 512 << 10, "2MiB": 2 << 20, "1GiB/s": 1 << 30, " 3 M ": 3 << 20} {
		if got, err := ParseRate(s); err != nil || got != want {
			t.Errorf("ParseRate(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	for _, s := range []string{"", "-1", "1.5M", "2TiB", "99999999999999999999", "8589934592G"} {
		if _, err := ParseRate(s); err == nil {
			t.Errorf("ParseRate(%q) succeeded", s)
		}
	}
}
