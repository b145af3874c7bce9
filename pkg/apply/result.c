/*
 * pkg/apply: per-object results — setting an outcome, a failure with its
 * code and HTTP status, freeing, and the text report (apply_result_report).
 * During a pass, a pool thread sets only the results of the items it was
 * handed; the failure helpers read that thread's last error.
 */
#include "apply/apply_internal.h"

#include <stdlib.h>
#include <string.h>

/* Frees r->fields and what they hold; the caller resets r->fields. */
static void free_fields(apply_object_result *r)
{
	for (size_t i = 0; i < r->nfields; i++) {
		free(r->fields[i].path);
		free(r->fields[i].manager);
	}
	free(r->fields);
}

void apply_object_result_clear(apply_object_result *r)
{
	free(r->api_version);
	free(r->kind);
	free(r->ns);
	free(r->name);
	free(r->message);
	free_fields(r);
	free(r->diff);
	free(r->origin);
	memset(r, 0, sizeof(*r));
}

void apply_result_free(apply_result *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->count; i++)
		apply_object_result_clear(&r->objects[i]);
	free(r->objects);
	free(r->message);
	memset(r, 0, sizeof(*r));
}

void apply_set_message(apply_object_result *r, const char *msg)
{
	free(r->message);
	r->message = plumb_strdup(msg ? msg : "");
}

void apply_set_outcome(apply_object_result *r, apply_action a, const char *msg)
{
	r->action = a;
	apply_set_message(r, msg);
}

void apply_take_fields(apply_object_result *r, apply_fields *f)
{
	free_fields(r);
	r->fields = f->items;
	r->nfields = f->count;
	memset(f, 0, sizeof(*f));
}

int apply_result_report(char **out, const apply_result *r)
{
	static const char marks[APPLY_ACTION_COUNT] = { ' ', '+', '~', '!', '!', '-', '?', '.', 'x' };
	plumb_buf b = PLUMB_BUF_INIT(256u * 1024 * 1024);
	int err = 0;

	for (size_t i = 0; i < r->count && !err; i++) {
		const apply_object_result *o = &r->objects[i];
		if (o->action == APPLY_UNCHANGED)
			continue;
		err = plumb_buf_printf(&b, "%c %s %s %s%s%s", marks[o->action], apply_action_name(o->action),
			o->kind, *o->ns ? o->ns : "", *o->ns ? "/" : "", o->name);
		for (size_t k = 0; k < o->nfields && !err && o->action != APPLY_UPDATED; k++)
			err = plumb_buf_printf(&b, "%s%s%s%s%s", k ? ", " : ": ", o->fields[k].path,
				o->fields[k].manager && *o->fields[k].manager ? " (by " : "",
				o->fields[k].manager && *o->fields[k].manager ? o->fields[k].manager : "",
				o->fields[k].manager && *o->fields[k].manager ? ")" : "");
		if (!err && o->message && *o->message)
			err = plumb_buf_printf(&b, " — %s%s%s", o->origin ? o->origin : "", o->origin ? ": " : "",
				o->message);
		if (!err)
			err = plumb_buf_puts(&b, "\n");
		if (!err && o->diff)
			err = plumb_buf_puts(&b, o->diff);
	}
	if (!err && r->message && *r->message)
		err = plumb_buf_printf(&b, "note: %s\n", r->message);
	if (!err)
		err = plumb_buf_printf(&b,
			"%s%zu created, %zu updated, %zu unchanged, %zu drifted, %zu corrected, "
			"%zu pruned, %zu conflict, %zu skipped, %zu failed\n",
			r->dry_run ? "(dry run) " : "", r->totals[APPLY_CREATED], r->totals[APPLY_UPDATED],
			r->totals[APPLY_UNCHANGED], r->totals[APPLY_DRIFTED], r->totals[APPLY_CORRECTED],
			r->totals[APPLY_PRUNED], r->totals[APPLY_CONFLICT], r->totals[APPLY_SKIPPED],
			r->totals[APPLY_FAILED]);
	if (err) {
		plumb_buf_free(&b);
		return err;
	}
	*out = plumb_buf_detach(&b);
	return 0;
}

void apply_fail_item(apply_object_result *r, int err)
{
	apply_set_outcome(r, APPLY_FAILED, plumb_error_last());
	r->code = err;
	r->http_status = kube_last_http_status();
}

/* A failure of a desired object, with where it comes from in Git. err is
 * the code of the call that just failed on this thread. */
void apply_fail_desired(const item *it, apply_object_result *r, const char *msg, int err)
{
	apply_set_outcome(r, APPLY_FAILED, msg);
	r->code = err;
	r->http_status = kube_last_http_status();
	if (it->origin && !r->origin)
		r->origin = plumb_strdup(it->origin);
}
