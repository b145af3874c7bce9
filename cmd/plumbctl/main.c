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
};

static void usage(FILE *f)
{
	fprintf(f, "usage: plumbctl COMMAND [ARGS]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %s\n", commands[i].help);
}

int main(int argc, char **argv)
{
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
