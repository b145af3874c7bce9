/*
 * pkg/render — the render stage: from the files of a revision and a path in
 * it to one YAML stream, made by the real `kustomize build` or
 * `helm template`, run in a sandbox. pkg/manifest then types, substitutes,
 * selects, validates and orders that stream as it does plain files.
 *
 * Kinds (render_detect()): an explicit kind wins; then helm when helm
 * options are given; then kustomize when the path holds kustomization.yaml,
 * kustomization.yml or Kustomization; then helm when it holds Chart.yaml;
 * otherwise plain. A plain render runs nothing: render_run() reports
 * RENDER_PLAIN with no bytes and the caller keeps today's path (the
 * manifest files under the path, each parsed under its own name, so errors
 * keep their file:line:col).
 *
 * The sandbox, per render (render_run()):
 *   - a fresh work directory under tools->tmp_dir ($TMPDIR, else /tmp),
 *     mode 0700, removed with everything in it before render_run() returns,
 *     whatever happened (timeout and failures included);
 *   - the revision's files materialised in work/tree: only the files given,
 *     paths checked (no "..", no absolute path, no empty or "." component),
 *     created with O_EXCL|O_NOFOLLOW so no symlink exists in the tree, files
 *     0444 and directories 0555 (binding for a non-root plumbd, as the chart
 *     runs it; root ignores modes);
 *   - the tool as a child (fork + execve, no shell) in its own process
 *     group, stdin /dev/null, every other descriptor closed, signal mask and
 *     dispositions reset, a network namespace of its own with no interface
 *     but a down loopback (render_network_isolation()), an environment of its
 *     own only (render_env_build():
 *     PATH=/usr/bin:/bin, HOME, TMPDIR, XDG_* and HELM_* dirs in work/home,
 *     no plugins, KUBECONFIG pointing at nothing; nothing of plumbd's
 *     environment), RLIMIT_AS / RLIMIT_CPU / RLIMIT_NOFILE / RLIMIT_FSIZE;
 *   - a wall-clock timeout that kills the whole group (SIGKILL), a cap on
 *     stdout (past it the group is killed: PLUMB_ETOOBIG) and on the stderr
 *     kept (the rest is read and dropped);
 *   - kustomize: `kustomize build --load-restrictor LoadRestrictionsRootOnly
 *     tree/<path>`, never --enable-alpha-plugins, --enable-exec nor
 *     --enable-helm. Before it runs, every kustomization reachable from the
 *     path is read (render_kustomize_check()): a resources/bases/components/
 *     generators/transformers/validators entry that is a URL or a Git
 *     reference, that is absolute, that leaves the repository, or that is
 *     in no file of the revision (kustomize would then try it as a remote
 *     Git repository) is refused, and so is a helmCharts entry with a repo;
 *   - helm: `helm template --namespace=… --skip-tests [--include-crds]
 *     [--kube-version=…] [--api-versions=…]… [--values=…]… RELEASE CHART`
 *     (render_helm_argv()); values files must be files of the revision,
 *     inline values are written as JSON into the work directory (outside the
 *     tree) and come last; `helm dependency build`/`--dependency-update`
 *     never run, so a dependency that is not vendored in charts/ is an error
 *     that says so.
 *
 * Helm hooks. Flux's helm-controller runs real Helm releases, so hooks run
 * at their phase; Argo CD renders with `helm template` and maps install and
 * upgrade hooks to its PreSync/PostSync phases, ignoring test hooks. plumb
 * has no phases: test hooks are dropped (--skip-tests), and so is every
 * object whose helm.sh/hook names only delete or rollback phases
 * (pre-delete, post-delete, pre-rollback, post-rollback; applying those
 * would run a clean-up at install time). Objects with an install or upgrade
 * hook are kept as ordinary objects of the release, annotations unchanged.
 * NOTES.txt is never rendered by `helm template`; it is ignored.
 *
 * Errors: PLUMB_EINVALID for bad options, a refused kustomization entry or
 * a tool that failed (its message carries the tool's first stderr lines,
 * at most RENDER_ERROR_MAX bytes, with the work directory's paths turned back
 * into repository paths, and "file <path>" when it names a file of the
 * revision); PLUMB_ETIMEOUT past the timeout; PLUMB_ETOOBIG past a cap;
 * PLUMB_ENOTFOUND for a tool that is not there, or a kind forced on a path
 * without its kustomization or Chart.yaml; PLUMB_EIO for the work
 * directory. Nothing is kept across calls and no lock is taken: renders may
 * run in parallel on any thread. A caller must not reap children with
 * waitpid(-1, …) on another thread (the runner waits for its own pid).
 */
#ifndef PLUMB_RENDER_H
#define PLUMB_RENDER_H

#include <stddef.h>
#include <sys/types.h>

#include "source/source.h"

typedef enum {
	RENDER_AUTO = 0,  /* detect (render_detect()) */
	RENDER_PLAIN,
	RENDER_KUSTOMIZE,
	RENDER_HELM,
} render_kind;

/* "auto", "plain", "kustomize", "helm". */
const char *render_kind_name(render_kind kind);
/* Parses spec.render ("plain" | "kustomize" | "helm"; NULL or "" = auto).
 * PLUMB_EINVALID naming the text otherwise. */
int render_kind_parse(render_kind *out, const char *text);

/* spec.helm, and the cluster's version. Every path is relative to the
 * repository root. */
typedef struct {
	int set;                          /* spec.helm given: helm even without Chart.yaml */
	const char *chart;                /* chart folder; NULL = the render path */
	const char *release_name;         /* required: DNS-1123, <= 53 bytes */
	const char *namespace;            /* NULL = "default"; a DNS label */
	const char *const *values_files;  /* files of the revision, in order */
	size_t nvalues_files;
	const char *values_json;          /* inline values, a JSON object; NULL = none */
	int include_crds;                 /* 1: --include-crds */
	const char *kube_version;         /* "v1.36.3" / "1.36"; NULL = helm's own default */
	const char *const *api_versions;  /* "apps/v1", "monitoring.coreos.com/v1/ServiceMonitor" */
	size_t napi_versions;
} render_helm_opts;

typedef struct {
	render_kind kind;                 /* RENDER_AUTO: detect */
	render_helm_opts helm;
} render_opts;

typedef struct {
	const char *kustomize;  /* path of the binary; NULL: "kustomize" in PATH */
	const char *helm;       /* path of the binary; NULL: "helm" in PATH */
	const char *tmp_dir;    /* NULL: $TMPDIR, else /tmp */
} render_tools;

/* Zero fields take the default in brackets. */
typedef struct {
	double timeout;          /* wall-clock seconds of one render [60] */
	size_t max_output;       /* stdout bytes [MANIFEST_MAX_REVISION_BYTES, 64 MiB] */
	size_t max_stderr;       /* stderr bytes kept [64 KiB] */
	size_t max_memory;       /* RLIMIT_AS bytes [4 GiB: Go maps address space freely] */
	unsigned max_cpu;        /* RLIMIT_CPU seconds [2 x timeout, rounded up: Go uses several threads] */
	unsigned max_open_files; /* RLIMIT_NOFILE [1024] */
	size_t max_file_write;   /* RLIMIT_FSIZE bytes [64 MiB] */
	size_t max_tree_bytes;   /* bytes of all files materialised [256 MiB] */
	size_t max_tree_files;   /* files materialised [20000] */
} render_limits;

#define RENDER_ERROR_MAX 2048 /* bytes of a tool's stderr in an error message */
#define RENDER_MAX_VALUES_JSON (1u * 1024 * 1024)

typedef struct {
	render_kind kind;  /* what ran; RENDER_PLAIN: nothing ran, yaml is NULL */
	char *yaml;        /* the stream, NUL-terminated; owned */
	size_t len;
	double seconds;    /* wall-clock time of the tool */
	long peak_rss_kb;  /* the tool's peak resident set size (getrusage) */
} render_result;

/* Renders files (paths relative to the repository root, as pkg/source reads
 * them; for kustomize and helm the caller passes every file the render may
 * read, e.g. the whole revision) under path ("" = the root). opts, tools
 * and limits may be NULL. On success fills *out (render_result_clear()
 * frees it); on failure *out is untouched. */
int render_run(render_result *out, const source_files *files, const char *path,
	const render_opts *opts, const render_tools *tools, const render_limits *limits);
void render_result_clear(render_result *res);

/* The binary render_run() would run for kind (RENDER_KUSTOMIZE or
 * RENDER_HELM): tools' path when set (must be executable), else the name
 * in PATH. PLUMB_ENOTFOUND naming plumbd's flag otherwise. Caller frees. */
int render_tool_find(char **out, const render_tools *tools, render_kind kind);

/* Reads every file under dir (recursively, sorted by path, paths relative to
 * dir; dot files and folders skipped as pkg/source skips them) into *out, for
 * plumbctl's render/diff of a checkout. A symlink is PLUMB_EINVALID; caps as
 * source_limits (NULL or 0 fields: 4 MiB a file, 64 MiB, 10000 files) are
 * PLUMB_ETOOBIG. Caller frees with source_files_free(). */
int render_files_read_dir(source_files **out, const char *dir, const source_limits *limits);

/* ---- the pure parts, exposed for tests and for plumbctl ------------------- */

/* The kind render_run() would run for path (normalised, "" = root). */
render_kind render_detect(const source_files *files, const char *path, const render_opts *opts);

/* 1 when a kustomization entry names a remote base or file (a URL, an scp-
 * like git@host:path, a github.com/…, gitlab.com/…, bitbucket.org/… path,
 * a go-getter "git::" prefix, a "?ref=" / "?version=" query), else 0. */
int render_kustomize_entry_is_remote(const char *entry);

/* Reads the kustomization in path and every kustomization it reaches through
 * resources, bases and components, and refuses (PLUMB_EINVALID, the message
 * names the kustomization file and the entry) what would leave the
 * revision: remote entries, absolute paths, paths that climb out of the
 * repository, entries in no file of the revision, helmCharts with a repo.
 * PLUMB_ENOTFOUND when path holds no kustomization. */
int render_kustomize_check(const source_files *files, const char *path);

/* argv of the kustomize run (NULL-terminated, caller frees with
 * render_argv_free()): bin, "build", "--load-restrictor",
 * "LoadRestrictionsRootOnly", dir. */
int render_kustomize_argv(char ***out, const char *bin, const char *dir);

/* argv of the helm run. tree is the materialised repository root; chart
 * and values files are joined to it; values_json_file (NULL = none) is the
 * inline values' file. PLUMB_EINVALID for a release name, namespace, kube
 * version or API version that is malformed (so none can pass as a flag),
 * a values file that is not in files. */
int render_helm_argv(char ***out, const char *bin, const char *tree, const char *chart,
	const render_helm_opts *helm, const char *values_json_file, const source_files *files);
void render_argv_free(char **argv);

/* The child's whole environment (NULL-terminated "K=V" strings, caller
 * frees with render_argv_free()) for a home directory home: PATH, HOME,
 * TMPDIR, XDG_{CACHE,CONFIG,DATA}_HOME, HELM_{CACHE,CONFIG,DATA}_HOME,
 * HELM_PLUGINS, HELM_REPOSITORY_CONFIG/CACHE, HELM_REGISTRY_CONFIG,
 * HELM_NO_PLUGINS=1, KUBECONFIG (a missing file in home), LC_ALL=C and
 * GOMEMLIMIT (3/4 of max_memory, so Go collects before RLIMIT_AS hits).
 * Nothing is taken from the caller's environment. */
int render_env_build(char ***out, const char *home, size_t max_memory);

/* Drops the objects of a `helm template` stream whose helm.sh/hook names
 * only test, delete or rollback phases (see the header comment); other
 * documents are kept byte for byte. *out owned by the caller. */
int render_helm_filter_hooks(char **out, size_t *outlen, const char *yaml, size_t len);

/* ---- the runner ----------------------------------------------------------- */

typedef struct {
	char *const *argv;   /* argv[0] is a path: no PATH search */
	char *const *envp;   /* the whole environment */
	const char *cwd;     /* NULL: unchanged */
	double timeout;      /* seconds; <= 0: 60 */
	size_t max_stdout;   /* past it the group is killed; 0 = 64 MiB */
	size_t max_stderr;   /* kept; 0 = 64 KiB */
	size_t max_memory;   /* RLIMIT_AS; 0 = none */
	unsigned max_cpu;    /* RLIMIT_CPU seconds; 0 = none */
	unsigned max_open_files; /* RLIMIT_NOFILE; 0 = none */
	size_t max_file_write;   /* RLIMIT_FSIZE; 0 = none */
	int isolate_network;     /* 1: a network namespace of its own (render_network_isolation()) */
} render_exec_spec;

typedef struct {
	char *out;          /* stdout, NUL-terminated; owned */
	size_t out_len;
	char *err;          /* the first max_stderr bytes of stderr; owned */
	size_t err_len;
	int status;         /* waitpid status */
	int timed_out;      /* killed at the timeout */
	int out_too_big;    /* killed past max_stdout */
	double seconds;
	long peak_rss_kb;
} render_exec_result;

/* Runs spec->argv in the sandbox described above and waits for it. Returns 0
 * when the child ran to an end, also a failing one (see res->status),
 * timed out or killed for its output (res says which); PLUMB_ENOTFOUND
 * when argv[0] cannot be executed (message with errno), PLUMB_EIO when the
 * pipes or fork fail. res is filled on 0 (render_exec_result_clear()). */
int render_exec(render_exec_result *res, const render_exec_spec *spec);
void render_exec_result_clear(render_exec_result *res);

/* Whether a child of this process can get a network namespace of its own
 * (unshare(CLONE_NEWNET), or with CLONE_NEWUSER when plumbd lacks
 * CAP_SYS_ADMIN, as in a pod): 1 yes, 0 no, with the reason in *why (errno
 * text, static). Asked once by forking a probe; the answer is kept.
 * render_run() asks for the namespace on every render; where the kernel or
 * the container's seccomp profile refuses it, renders run in plumbd's
 * network (kustomize remote bases are still refused before they run, and
 * helm template fetches nothing), and plumbd says so at start-up. */
int render_network_isolation(const char **why);

#endif
