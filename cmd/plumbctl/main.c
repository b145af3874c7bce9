/*
 * plumbctl — the plumb CLI. Thin: a command table, flags, exit codes.
 * Each command lives in its own file (cmd_<name>.c) and is listed below.
 */
#include <stdio.h>
#include <string.h>

#include "base/base.h"
#include "plumbctl.h"

static const plumbctl_command commands[] = {
	{ "vet", "vet DIR                      validate a folder as one revision", plumbctl_vet },
	{ "render", "render DIR --cluster-name NAME [--cluster-label k=v …] [--set VAR=value …] [--namespace NS]\n"
		"                               print what that cluster would get, as YAML, in apply order",
		plumbctl_render },
	{ "status", "status [NAME] [-n NS | -A] [-o table|json|yaml]\n"
		"                               GitSyncs x clusters: state, health, commit, objects, drifted, lag, message",
		plumbctl_status },
	{ "diff", "diff DIR [--cluster-kubeconfig PATH] | [DIR] --gitsync NAME --cluster NAME\n"
		"                               what a sync would change in a cluster (dry run); exit 1 on differences",
		plumbctl_diff },
	{ "sync", "sync NAME [--wait] [--timeout D]  ask plumbd to sync now (plumb.dev/requested-at)", plumbctl_sync },
	{ "rollout", "rollout status|pause|resume|abort NAME [-o table|json|yaml]\n"
		"                               a GitSync's progressive rollout (spec.rollout): waves, pause, abort",
		plumbctl_rollout },
	{ "version", "version [--client]           plumbctl's version and the cluster's", plumbctl_version },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: plumbctl COMMAND [ARGS]    (plumbctl COMMAND --help for details)\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %s\n", commands[i].help);
	fprintf(f, "\nglobal flags of the online commands (status, diff, sync, rollout, version):\n" PLUMBCTL_CONN_FLAGS
		"\nexit codes: 0 ok (diff: no differences); 1 diff: differences, sync --wait: not Ready,\n"
		"  rollout status: no rollout, vet/render: invalid; 2 usage; 3 cluster unreachable, refused or not found;\n"
		"  4 sync --wait timed out; 5 diff: the revision does not render or would fail to apply\n");
}

int main(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "--version"))
		argv[1] = "version";
	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(commands[i].name, argv[1]))
			return commands[i].run(argc - 1, argv + 1);
	fprintf(stderr, "plumbctl: unknown command \"%s\"\n", argv[1]);
	usage(stderr);
	return 2;
}
