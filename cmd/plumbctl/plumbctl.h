/* plumbctl's command table. A command gets argv starting at its own name
 * and returns the process exit code (0 ok, 1 failure, 2 usage). */
#ifndef PLUMBCTL_H
#define PLUMBCTL_H

typedef struct {
	const char *name;
	const char *help;
	int (*run)(int argc, char **argv);
} plumbctl_command;

int plumbctl_vet(int argc, char **argv);
int plumbctl_render(int argc, char **argv);

#endif
