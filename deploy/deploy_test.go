// Package deploy_test checks the deployment files against each other and
// against ferryd itself, without a Docker engine: the compose stack's
// references resolve, the ports line up, the environment passes ferryd's
// own configuration validation, and the Prometheus and Grafana files parse
// and name only metrics the code defines.
package deploy_test

import (
	"bytes"
	"encoding/json"
	"io"
	"io/fs"
	"maps"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/ferryhq/ferry/config"
)

// The test runs in deploy/; the compose file lives one level up.
const root = ".."

type compose struct {
	Name     string             `yaml:"name"`
	Services map[string]service `yaml:"services"`
	Volumes  map[string]any     `yaml:"volumes"`
}

// service lists every key the compose file uses; decoding is strict, so a
// misspelt key fails the test instead of being ignored by the check.
type service struct {
	Image       string            `yaml:"image"`
	Build       string            `yaml:"build"`
	Command     stringList        `yaml:"command"`
	Entrypoint  stringList        `yaml:"entrypoint"`
	Environment map[string]string `yaml:"environment"`
	Ports       []string          `yaml:"ports"`
	Volumes     []string          `yaml:"volumes"`
	DependsOn   dependsOn         `yaml:"depends_on"`
	Healthcheck map[string]any    `yaml:"healthcheck"`
	Restart     string            `yaml:"restart"`
	Profiles    []string          `yaml:"profiles"`
}

// stringList accepts compose's string or list form.
type stringList []string

func (l *stringList) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*l = strings.Fields(n.Value)
		return nil
	}
	return n.Decode((*[]string)(l))
}

// dependsOn maps each dependency to its condition ("" in the short form).
type dependsOn map[string]string

func (d *dependsOn) UnmarshalYAML(n *yaml.Node) error {
	*d = dependsOn{}
	if n.Kind == yaml.SequenceNode {
		var names []string
		if err := n.Decode(&names); err != nil {
			return err
		}
		for _, name := range names {
			(*d)[name] = ""
		}
		return nil
	}
	var long map[string]struct {
		Condition string `yaml:"condition"`
	}
	if err := n.Decode(&long); err != nil {
		return err
	}
	for name, v := range long {
		(*d)[name] = v.Condition
	}
	return nil
}

func decodeStrict(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func loadCompose(t *testing.T) compose {
	t.Helper()
	var c compose
	decodeStrict(t, filepath.Join(root, "docker-compose.yml"), &c)
	if len(c.Services) == 0 {
		t.Fatal("docker-compose.yml has no services")
	}
	return c
}

// dockerfile is what the test needs from the Dockerfile.
type dockerfile struct {
	from       []string // every FROM image
	user       string
	expose     []string
	entrypoint []string
}

func loadDockerfile(t *testing.T) dockerfile {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var d dockerfile
	for line := range strings.Lines(string(data)) {
		f := strings.Fields(line)
		if len(f) < 2 || strings.HasPrefix(f[0], "#") {
			continue
		}
		switch strings.ToUpper(f[0]) {
		case "FROM":
			d.from = append(d.from, f[1])
		case "USER":
			d.user = f[1]
		case "EXPOSE":
			d.expose = append(d.expose, f[1:]...)
		case "ENTRYPOINT":
			if err := json.Unmarshal([]byte(strings.TrimSpace(line)[len("ENTRYPOINT"):]), &d.entrypoint); err != nil {
				t.Fatalf("Dockerfile ENTRYPOINT must be the exec (JSON) form: %v", err)
			}
		}
	}
	return d
}

// flag returns the value of --name in args.
func flag(args []string, name string) string {
	for i, a := range args {
		if a == "--"+name && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v
		}
	}
	return ""
}

// listenPort is the port a service's container listens on: ferryd's from
// the Dockerfile, the others from their images' documented defaults unless
// the command overrides them.
func listenPort(t *testing.T, name string, s service, df dockerfile) string {
	t.Helper()
	switch {
	case name == "ferryd" || s.Build != "":
		_, port, err := net.SplitHostPort(flag(df.entrypoint, "addr"))
		if err != nil {
			t.Fatalf("Dockerfile ENTRYPOINT --addr: %v", err)
		}
		return port
	case strings.HasPrefix(s.Image, "redis:"):
		if p := flag(s.Command, "port"); p != "" {
			return p
		}
		return "6379"
	case strings.HasPrefix(s.Image, "minio/minio"):
		if a := flag(s.Command, "address"); a != "" {
			_, p, _ := net.SplitHostPort(a)
			return p
		}
		return "9000"
	case strings.HasPrefix(s.Image, "nginx:"):
		return "8321" // deploy/nginx/nginx.conf's listen
	case strings.HasPrefix(s.Image, "prom/prometheus"):
		return "9090"
	case strings.HasPrefix(s.Image, "grafana/grafana"):
		return "3000"
	}
	return ""
}

func TestComposeReferences(t *testing.T) {
	c := loadCompose(t)
	for name, s := range c.Services {
		if (s.Image == "") == (s.Build == "") {
			t.Errorf("service %s: give exactly one of image and build", name)
		}
		for dep, cond := range s.DependsOn {
			d, ok := c.Services[dep]
			switch {
			case !ok:
				t.Errorf("service %s depends on %s, which is not a service", name, dep)
			case cond == "service_healthy" && d.Healthcheck == nil:
				t.Errorf("service %s waits for %s to be healthy, but %s has no healthcheck", name, dep, dep)
			case !slices.Contains([]string{"", "service_started", "service_healthy", "service_completed_successfully"}, cond):
				t.Errorf("service %s: unknown depends_on condition %q", name, cond)
			}
		}
		for _, v := range s.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if strings.HasPrefix(src, ".") {
				if _, err := os.Stat(filepath.Join(root, src)); err != nil {
					t.Errorf("service %s mounts %s: %v", name, src, err)
				}
			} else if _, ok := c.Volumes[src]; !ok {
				t.Errorf("service %s mounts volume %s, which is not declared under volumes:", name, src)
			}
		}
	}
	if cond := c.Services["ferryd"].DependsOn["minio-init"]; cond != "service_completed_successfully" {
		t.Errorf("ferryd must wait for minio-init to complete (the bucket must exist), has condition %q", cond)
	}
}

// The scale profile: three ferryd instances with one configuration behind
// nginx, whose upstream names exactly those instances on ferryd's port.
func TestComposeScaleProfile(t *testing.T) {
	c, df := loadCompose(t), loadDockerfile(t)
	var instances []string
	for name, s := range c.Services {
		if s.Build == "" {
			continue
		}
		instances = append(instances, name)
		if !maps.Equal(s.Environment, c.Services["ferryd"].Environment) {
			t.Errorf("%s's environment differs from ferryd's: instances must share Redis and S3", name)
		}
	}
	slices.Sort(instances)
	if !slices.Equal(instances, []string{"ferryd", "ferryd-2", "ferryd-3"}) {
		t.Fatalf("ferryd instances %v, want ferryd, ferryd-2, ferryd-3", instances)
	}
	lb := c.Services["lb"]
	if !slices.Contains(lb.Profiles, "scale") || !slices.Contains(c.Services["ferryd-2"].Profiles, "scale") {
		t.Error("lb and the extra instances belong to the scale profile")
	}
	conf, err := os.ReadFile(filepath.Join(root, "deploy/nginx/nginx.conf"))
	if err != nil {
		t.Fatal(err)
	}
	var upstream []string
	for _, m := range regexp.MustCompile(`(?m)^\s*server\s+([\w-]+:\d+);`).FindAllStringSubmatch(string(conf), -1) {
		upstream = append(upstream, m[1])
	}
	port := listenPort(t, "ferryd", service{}, df)
	want := []string{"ferryd:" + port, "ferryd-2:" + port, "ferryd-3:" + port}
	if !slices.Equal(upstream, want) {
		t.Errorf("nginx upstream %v, want %v", upstream, want)
	}
	for _, d := range []string{"proxy_request_buffering off;", "client_max_body_size 0;", "proxy_next_upstream error timeout;"} {
		if !strings.Contains(string(conf), d) {
			t.Errorf("nginx.conf lacks %q: chunks must stream, any size, and a POST must never be resent", d)
		}
	}
}

// Every URL naming a compose service, in any environment value or command,
// uses the port that service listens on.
func TestComposePorts(t *testing.T) {
	c, df := loadCompose(t), loadDockerfile(t)
	urlRE := regexp.MustCompile(`[a-z]+://[^\s"']+`)
	checked := map[string]bool{}
	for name, s := range c.Services {
		texts := slices.Concat(s.Command, s.Entrypoint)
		for _, v := range s.Environment {
			texts = append(texts, v)
		}
		for _, text := range texts {
			for _, raw := range urlRE.FindAllString(text, -1) {
				u, err := url.Parse(raw)
				if err != nil {
					continue
				}
				target, ok := c.Services[u.Hostname()]
				if !ok {
					continue
				}
				want := listenPort(t, u.Hostname(), target, df)
				if u.Port() != want {
					t.Errorf("service %s uses %s, but %s listens on port %s", name, raw, u.Hostname(), want)
				}
				checked[u.Host] = true
			}
		}
		for _, p := range s.Ports {
			// [ip:]host:container
			parts := strings.Split(p, ":")
			if container := parts[len(parts)-1]; container != listenPort(t, name, s, df) &&
				!(strings.HasPrefix(s.Image, "minio/minio") && container == flagPort(s.Command, "console-address")) {
				t.Errorf("service %s publishes container port %s, which it does not listen on", name, container)
			}
		}
	}
	for _, hp := range []string{"redis:6379", "minio:9000"} {
		if !checked[hp] {
			t.Errorf("no URL to %s was found to check; the ferryd environment should name it", hp)
		}
	}
	if !slices.Contains(df.expose, listenPort(t, "ferryd", service{}, df)) {
		t.Errorf("Dockerfile EXPOSE %v does not include ferryd's port", df.expose)
	}
}

func flagPort(args []string, name string) string {
	_, p, _ := net.SplitHostPort(flag(args, name))
	return p
}

func TestDockerfile(t *testing.T) {
	df := loadDockerfile(t)
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(gomod)
	if m == nil {
		t.Fatal("go.mod has no go directive")
	}
	if want := "golang:" + string(m[1]); len(df.from) == 0 || !strings.HasPrefix(df.from[0], want) {
		t.Errorf("build stage is %v, want %s (go.mod's Go version)", df.from, want)
	}
	if df.user != "nonroot" {
		t.Errorf("USER %q, want nonroot", df.user)
	}
}

// The ferryd service's environment, with the Dockerfile's flags, is a
// configuration ferryd accepts, and it really selects Redis and MinIO.
func TestComposeConfigValid(t *testing.T) {
	c, df := loadCompose(t), loadDockerfile(t)
	env := c.Services["ferryd"].Environment
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	cfg, err := config.Load(df.entrypoint[1:], lookup, io.Discard)
	if err != nil {
		t.Fatalf("config.Load: %v", err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("ferryd would refuse the compose configuration:\n%v", err)
	}
	if !cfg.UsesRedis() || !cfg.UsesS3() {
		t.Errorf("compose ferryd should use Redis and S3: redis=%v s3=%v", cfg.UsesRedis(), cfg.UsesS3())
	}
	minio := c.Services["minio"].Environment
	if cfg.S3.AccessKeyID != minio["MINIO_ROOT_USER"] || cfg.S3.SecretAccessKey != minio["MINIO_ROOT_PASSWORD"] {
		t.Error("ferryd's AWS credentials do not match MinIO's root user")
	}
	script := strings.Join(c.Services["minio-init"].Command, " ")
	if !strings.Contains(script, "mc mb --ignore-existing local/"+cfg.S3.Bucket) {
		t.Errorf("minio-init does not create bucket %q:\n%s", cfg.S3.Bucket, script)
	}
	if !strings.Contains(script, c.Services["minio"].Environment["MINIO_ROOT_PASSWORD"]) {
		t.Error("minio-init does not log in with MinIO's root credentials")
	}
}

type promConfig struct {
	Global        map[string]string `yaml:"global"`
	RuleFiles     []string          `yaml:"rule_files"`
	ScrapeConfigs []struct {
		JobName       string `yaml:"job_name"`
		MetricsPath   string `yaml:"metrics_path"`
		StaticConfigs []struct {
			Targets []string `yaml:"targets"`
		} `yaml:"static_configs"`
	} `yaml:"scrape_configs"`
}

// Prometheus scrapes the ferryd service on its port, and loads rule files
// that exist and are mounted next to its config.
func TestPrometheusConfig(t *testing.T) {
	c, df := loadCompose(t), loadDockerfile(t)
	var pc promConfig
	decodeStrict(t, filepath.Join("prometheus", "prometheus.yml"), &pc)
	want := "ferryd:" + listenPort(t, "ferryd", service{}, df)
	found := false
	for _, sc := range pc.ScrapeConfigs {
		if sc.JobName != "ferryd" {
			continue
		}
		for _, st := range sc.StaticConfigs {
			for _, target := range st.Targets {
				if target != want {
					t.Errorf("job ferryd scrapes %s, want %s", target, want)
				}
				found = true
			}
		}
		if sc.MetricsPath != "" && sc.MetricsPath != "/metrics" {
			t.Errorf("job ferryd scrapes %s; ferryd serves /metrics", sc.MetricsPath)
		}
	}
	if !found {
		t.Fatal("no ferryd job with a target in prometheus.yml")
	}
	mounts := strings.Join(c.Services["prometheus"].Volumes, "\n")
	for _, rf := range pc.RuleFiles {
		if _, err := os.Stat(filepath.Join("prometheus", rf)); err != nil {
			t.Errorf("rule file %s: %v", rf, err)
		}
		if !strings.Contains(mounts, "/etc/prometheus/"+rf) {
			t.Errorf("rule file %s is not mounted next to prometheus.yml in the container", rf)
		}
	}
}

type ruleGroups struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func TestAlertRules(t *testing.T) {
	var rg ruleGroups
	decodeStrict(t, filepath.Join("prometheus", "alerts.yml"), &rg)
	known := definedMetrics(t)
	seen := map[string]bool{}
	for _, g := range rg.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || strings.TrimSpace(r.Expr) == "" {
				t.Errorf("group %s: a rule without alert name or expr: %+v", g.Name, r)
			}
			if seen[r.Alert] {
				t.Errorf("alert %s is defined twice", r.Alert)
			}
			seen[r.Alert] = true
			if r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("alert %s needs a severity label and a summary", r.Alert)
			}
			checkMetrics(t, "alert "+r.Alert, r.Expr, known)
		}
	}
	for _, name := range []string{"FerryDown", "FerryHigh5xxRate", "FerryS3Errors", "FerryMetadataStoreUnavailable", "FerryPurgeBacklogGrowing", "FerryPurgeFailing", "FerryHeldBytesNearLimit"} {
		if !seen[name] {
			t.Errorf("alert %s is missing", name)
		}
	}
}

type panel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	GridPos *struct{ H, W, X, Y int } `json:"gridPos"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
}

// The dashboard is valid JSON, every panel queries something, through the
// provisioned datasource, and the provisioning points where compose mounts.
func TestGrafanaDashboard(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("grafana", "dashboards", "ferry.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID    string  `json:"uid"`
		Title  string  `json:"title"`
		Panels []panel `json:"panels"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("ferry.json: %v", err)
	}
	var ds struct {
		Datasources []struct{ UID, URL string } `yaml:"datasources"`
	}
	data, err = os.ReadFile(filepath.Join("grafana", "provisioning", "datasources", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &ds); err != nil || len(ds.Datasources) != 1 {
		t.Fatalf("datasource provisioning: %v %+v", err, ds)
	}
	if u, err := url.Parse(ds.Datasources[0].URL); err != nil || u.Host != "prometheus:9090" {
		t.Errorf("datasource url %q, want the prometheus service on 9090", ds.Datasources[0].URL)
	}
	known := definedMetrics(t)
	ids := map[int]bool{}
	for _, p := range dash.Panels {
		if ids[p.ID] || p.GridPos == nil {
			t.Errorf("panel %q: duplicate id %d or no gridPos", p.Title, p.ID)
		}
		ids[p.ID] = true
		if p.Type == "row" {
			continue
		}
		if p.Datasource.UID != ds.Datasources[0].UID {
			t.Errorf("panel %q uses datasource %q, want the provisioned %q", p.Title, p.Datasource.UID, ds.Datasources[0].UID)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no targets", p.Title)
		}
		for _, tg := range p.Targets {
			if strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("panel %q has a target without expr", p.Title)
			}
			checkMetrics(t, "panel "+p.Title, tg.Expr, known)
		}
	}

	var prov struct {
		Providers []struct {
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	data, err = os.ReadFile(filepath.Join("grafana", "provisioning", "dashboards", "ferry.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &prov); err != nil || len(prov.Providers) != 1 {
		t.Fatalf("dashboard provisioning: %v", err)
	}
	mounts := loadCompose(t).Services["grafana"].Volumes
	if !slices.Contains(mounts, "./deploy/grafana/dashboards:"+prov.Providers[0].Options.Path+":ro") {
		t.Errorf("dashboards are read from %s, which compose does not mount from ./deploy/grafana/dashboards", prov.Providers[0].Options.Path)
	}
}

// definedMetrics collects the ferry_* names the Go code registers (every
// string literal that looks like one), so a typo in a query fails here
// rather than showing an empty panel.
func definedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	re := regexp.MustCompile(`"(ferry_[a-z0-9_]+)"`)
	known := map[string]bool{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "deploy") {
			return filepath.SkipDir
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range re.FindAllSubmatch(src, -1) {
			known[string(m[1])] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return known
}

func checkMetrics(t *testing.T, where, expr string, known map[string]bool) {
	t.Helper()
	for _, name := range regexp.MustCompile(`\bferry_[a-z0-9_]+`).FindAllString(expr, -1) {
		base := name
		for _, suffix := range []string{"_bucket", "_count", "_sum"} {
			if b, ok := strings.CutSuffix(name, suffix); ok && known[b] {
				base = b
			}
		}
		if !known[base] {
			t.Errorf("%s uses %s, which no code defines", where, name)
		}
	}
}

// docsTable returns the rows of the first markdown table after the line
// starting with heading in docs/deploy.md, as trimmed cells without
// backquotes.
func docsTable(t *testing.T, heading string) [][]string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "docs", "deploy.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(data), "\n"+heading)
	if !ok {
		t.Fatalf("docs/deploy.md has no line starting %q", heading)
	}
	var rows [][]string
	for line := range strings.Lines(after) {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "|---"):
		case strings.HasPrefix(line, "|"):
			var cells []string
			for _, c := range strings.Split(strings.Trim(line, "|"), "|") {
				cells = append(cells, strings.Trim(strings.TrimSpace(c), "`"))
			}
			rows = append(rows, cells)
		case len(rows) > 0:
			return rows[1:] // past the header
		}
	}
	return rows[1:]
}

// docs/deploy.md's alert table lists every rule of alerts.yml, with its
// severity, and nothing else.
func TestDeployDocListsEveryAlert(t *testing.T) {
	var rg ruleGroups
	decodeStrict(t, filepath.Join("prometheus", "alerts.yml"), &rg)
	want := map[string]string{}
	for _, g := range rg.Groups {
		for _, r := range g.Rules {
			want[r.Alert] = r.Labels["severity"]
		}
	}
	got := map[string]string{}
	for _, row := range docsTable(t, "Alert rules") {
		if len(row) != 3 {
			t.Fatalf("alert row %q: want alert | severity | fires when", row)
		}
		got[row[0]] = row[1]
	}
	if !maps.Equal(got, want) {
		t.Errorf("docs/deploy.md lists alerts %v; alerts.yml has %v", got, want)
	}
}

// The image's docker run example in docs/deploy.md is a configuration
// ferryd starts with: the Dockerfile's flags and the example's -e.
func TestDockerRunExampleValid(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(root, "docs", "deploy.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^docker run (?:.*\\\n)*.*$`).FindString(string(data))
	if m == "" {
		t.Fatal("docs/deploy.md has no docker run example")
	}
	env := map[string]string{}
	args := strings.Fields(strings.ReplaceAll(m, "\\\n", " "))
	for i, a := range args {
		if a == "-e" && i+1 < len(args) {
			k, v, _ := strings.Cut(args[i+1], "=")
			env[k] = v
		}
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	cfg, err := config.Load(loadDockerfile(t).entrypoint[1:], lookup, io.Discard)
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		t.Fatalf("ferryd would refuse %q:\n%v", m, err)
	}
}
