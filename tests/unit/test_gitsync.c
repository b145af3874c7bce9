/* Unit tests for pkg/gitsync: a GitSync and a Cluster parsed into typed
 * values (every field, the defaults, every field error), the interval and
 * timeout bounds, the ref rule, cluster selection, render for one cluster,
 * the apply and fetch options, the identity, and the kubeconfig and Git
 * credentials from Secrets. */
#include <check.h>
#include <pthread.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "test_json.h"
#include "gitsync/gitsync.h"


static gitsync_spec *spec(const char *text)
{
	cJSON *j = test_json(text);
	gitsync_spec *gs = NULL;
	ck_assert_msg(gitsync_spec_parse(&gs, j) == 0, "%s: %s", text, plumb_error_last());
	cJSON_Delete(j);
	return gs;
}

static gitsync_cluster *cluster(const char *text)
{
	cJSON *j = test_json(text);
	gitsync_cluster *cl = NULL;
	ck_assert_msg(gitsync_cluster_parse(&cl, j) == 0, "%s: %s", text, plumb_error_last());
	cJSON_Delete(j);
	return cl;
}

/* A valid GitSync in namespace plumb with spec members extra. Caller frees. */
static gitsync_spec *with(const char *extra)
{
	char buf[4096];
	snprintf(buf, sizeof(buf), "{'metadata':{'name':'shop','namespace':'plumb'},'spec':{"
		"'git':{'url':'https://git.example.com/r.git','ref':{'branch':'main'}},"
		"%s%s%s}}", strstr(extra, "'targets'") ? "" : "'targets':{'clusterNames':['c1']}",
		*extra && !strstr(extra, "'targets'") ? "," : "", extra);
	return spec(buf);
}

static int has_error(const gitsync_spec *gs, const char *msg)
{
	for (size_t i = 0; i < gs->nerrors; i++)
		if (!strcmp(gs->errors[i], msg))
			return 1;
	return 0;
}

START_TEST(test_gitsync__parse_every_field)
{
	gitsync_spec *gs = spec("{'metadata':{'name':'shop','namespace':'plumb','uid':'u-1','generation':7},"
		"'spec':{'git':{'url':'ssh://git@h/r.git','ref':{'tag':'v1.2'},'path':'apps/eu',"
		"'secretRef':{'name':'shop-git'},'interval':'2m','timeout':'30s'},"
		"'targets':{'clusterNames':['a','b'],'clusterSelector':{'matchLabels':{'env':'prod'}}},"
		"'prune':false,'allowEmpty':true,'adopt':true,'suspend':true,'driftPolicy':'Report',"
		"'debounce':'250ms','substitute':{'TEAM':'payments','TIER':'web'},'targetNamespace':'shop',"
		"'serviceAccountName':'deployer','webhook':{'secretRef':{'name':'shop-hook'}}}}");
	ck_assert_str_eq(gs->ns, "plumb");
	ck_assert_str_eq(gs->name, "shop");
	ck_assert_str_eq(gs->uid, "u-1");
	ck_assert_int_eq(gs->generation, 7);
	ck_assert_str_eq(gs->git.url, "ssh://git@h/r.git");
	ck_assert_int_eq(gs->git.ref_kind, SOURCE_REF_TAG);
	ck_assert_str_eq(gs->git.ref, "v1.2");
	ck_assert_str_eq(gs->git.path, "apps/eu");
	ck_assert_str_eq(gs->git.secret_name, "shop-git");
	ck_assert(gs->git.interval == 120);
	ck_assert(gs->git.timeout == 30);
	ck_assert_int_eq(gs->git.interval_clamped, 0);
	ck_assert_int_eq(gs->git.timeout_clamped, 0);
	ck_assert_str_eq(gs->git.interval_text, "2m");
	ck_assert_str_eq(gs->git.timeout_text, "30s");
	ck_assert_int_eq(gs->targets.ncluster_names, 2);
	ck_assert_str_eq(gs->targets.cluster_names[0], "a");
	ck_assert_str_eq(gs->targets.cluster_names[1], "b");
	ck_assert_int_eq(gs->targets.has_selector, 1);
	ck_assert_ptr_nonnull(gs->targets.selector);
	ck_assert_int_eq(gs->prune, 0);
	ck_assert_int_eq(gs->allow_empty, 1);
	ck_assert_int_eq(gs->adopt, 1);
	ck_assert_int_eq(gs->suspend, 1);
	ck_assert_int_eq(gs->drift, APPLY_DRIFT_REPORT);
	ck_assert(gs->debounce == 0.25);
	ck_assert_int_eq(gs->nsubstitute, 2);
	ck_assert_str_eq(gs->substitute[0].name, "TEAM");
	ck_assert_str_eq(gs->substitute[0].value, "payments");
	ck_assert_str_eq(gs->substitute[1].name, "TIER");
	ck_assert_str_eq(gs->substitute[1].value, "web");
	ck_assert_str_eq(gs->target_namespace, "shop");
	ck_assert_str_eq(gs->service_account_name, "deployer");
	ck_assert_str_eq(gs->webhook_secret_name, "shop-hook");
	ck_assert_msg(gs->nerrors == 0, "unexpected error: %s", gs->nerrors ? gs->errors[0] : "");
	gitsync_spec_free(gs);
}
END_TEST

START_TEST(test_gitsync__parse_defaults)
{
	gitsync_spec *gs = with("");
	ck_assert_int_eq(gs->git.ref_kind, SOURCE_REF_BRANCH);
	ck_assert_str_eq(gs->git.ref, "main");
	ck_assert_str_eq(gs->git.path, "");
	ck_assert_ptr_null(gs->git.secret_name);
	ck_assert(gs->git.interval == 60);
	ck_assert(gs->git.timeout == 60);
	ck_assert_ptr_null(gs->git.interval_text);
	ck_assert_int_eq(gs->targets.has_selector, 0);
	ck_assert_ptr_null(gs->targets.selector);
	ck_assert_int_eq(gs->prune, 1);
	ck_assert_int_eq(gs->allow_empty, 0);
	ck_assert_int_eq(gs->adopt, 0);
	ck_assert_int_eq(gs->suspend, 0);
	ck_assert_int_eq(gs->drift, APPLY_DRIFT_CORRECT);
	ck_assert(gs->debounce == 1);
	ck_assert_int_eq(gs->nsubstitute, 0);
	ck_assert_ptr_null(gs->target_namespace);
	ck_assert_ptr_null(gs->service_account_name);
	ck_assert_ptr_null(gs->webhook_secret_name);
	ck_assert_ptr_null(gs->uid);
	ck_assert_int_eq(gs->generation, 0);
	ck_assert_int_eq(gs->nerrors, 0);
	ck_assert_int_eq(gitsync_source_check(gs), 0);
	gitsync_spec_free(gs);

	/* "Correct" is the default spelled out */
	gs = with("'driftPolicy':'Correct'");
	ck_assert_int_eq(gs->drift, APPLY_DRIFT_CORRECT);
	ck_assert_int_eq(gs->nerrors, 0);
	gitsync_spec_free(gs);

	/* not an object */
	cJSON *arr = cJSON_CreateArray();
	gs = (gitsync_spec *)1;
	ck_assert_int_eq(gitsync_spec_parse(&gs, arr), PLUMB_EINVALID);
	ck_assert_ptr_null(gs);
	cJSON_Delete(arr);
}
END_TEST

/* Each malformed field falls back to what plumbd has always used and is
 * recorded with a message that starts with the field. */
START_TEST(test_gitsync__field_errors)
{
	static const struct { const char *extra; const char *error; } cases[] = {
		{ "'debounce':'soon'", "spec.debounce: not a duration" },
		{ "'debounce':5", "spec.debounce: not a duration" },
		{ "'prune':'no'", "spec.prune: not a boolean" },
		{ "'allowEmpty':1", "spec.allowEmpty: not a boolean" },
		{ "'adopt':'true'", "spec.adopt: not a boolean" },
		{ "'suspend':'yes'", "spec.suspend: not a boolean" },
		{ "'driftPolicy':'Ignore'", "spec.driftPolicy: must be Correct or Report" },
		{ "'substitute':{'N':3}", "spec.substitute.N: not a string" },
		{ "'targets':{}", "spec.targets: needs a clusterSelector or clusterNames" },
		{ "'targets':{'clusterSelector':{'matchLabels':{'env':1}}}",
		  "spec.targets.clusterSelector.matchLabels.env: not a string" },
		{ "'targets':{'clusterSelector':{'matchExpressions':[{'operator':'Exists'}]}}",
		  "spec.targets.clusterSelector.matchExpressions[0].key: required" },
		{ "'targets':{'clusterSelector':{'matchExpressions':[{'key':'a','operator':'Exists'},{'key':'env'}]}}",
		  "spec.targets.clusterSelector.matchExpressions[1].operator: required" },
		{ "'targets':{'clusterSelector':{'matchExpressions':[{'key':'env','operator':'Gt','values':['1']}]}}",
		  "spec.targets.clusterSelector.matchExpressions[0].operator: must be In, NotIn, Exists or DoesNotExist" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		gitsync_spec *gs = with(cases[i].extra);
		ck_assert_msg(gs->nerrors == 1 && !strcmp(gs->errors[0], cases[i].error),
			"%s: got %zu errors, first \"%s\", want \"%s\"", cases[i].extra, gs->nerrors,
			gs->nerrors ? gs->errors[0] : "", cases[i].error);
		gitsync_spec_free(gs);
	}
	/* the fallbacks */
	gitsync_spec *gs = with("'debounce':'soon','prune':'no','allowEmpty':1,'driftPolicy':'Ignore','substitute':{'N':3,'M':'m'}");
	ck_assert(gs->debounce == 1);
	ck_assert_int_eq(gs->prune, 1);
	ck_assert_int_eq(gs->allow_empty, 0);
	ck_assert_int_eq(gs->drift, APPLY_DRIFT_CORRECT);
	ck_assert_int_eq(gs->nsubstitute, 1);
	ck_assert_str_eq(gs->substitute[0].name, "M");
	ck_assert_int_eq(gs->nerrors, 5);
	gitsync_spec_free(gs);

	/* source errors; plumbctl refuses such a GitSync, plumbd waits */
	gs = spec("{'metadata':{'name':'x','namespace':'n'},'spec':{'git':{'interval':'often','timeout':'later'},"
		"'targets':{'clusterNames':['a']}}}");
	ck_assert(has_error(gs, "spec.git.url: required"));
	ck_assert(has_error(gs, "spec.git.ref: exactly one of branch, tag or commit"));
	ck_assert(has_error(gs, "spec.git.interval: not a duration"));
	ck_assert(has_error(gs, "spec.git.timeout: not a duration"));
	ck_assert_int_eq(gs->nerrors, 4);
	ck_assert(gs->git.interval == 60 && gs->git.timeout == 60);
	ck_assert_int_eq(gitsync_source_check(gs), PLUMB_EINVALID);
	ck_assert_str_eq(plumb_error_last(), "GitSync n/x: spec.git.url: required");
	free(gs->git.url);
	gs->git.url = plumb_strdup("https://h/r.git");
	ck_assert_int_eq(gitsync_source_check(gs), PLUMB_EINVALID);
	ck_assert_str_eq(plumb_error_last(), "GitSync n/x: spec.git.ref: exactly one of branch, tag or commit");
	gitsync_spec_free(gs);

	/* the list is bounded */
	plumb_buf b = PLUMB_BUF_INIT(1 << 20);
	plumb_buf_puts(&b, "'substitute':{");
	for (int i = 0; i < GITSYNC_MAX_ERRORS + 8; i++)
		plumb_buf_printf(&b, "%s'V%d':%d", i ? "," : "", i, i);
	plumb_buf_puts(&b, "}");
	gs = with(b.ptr);
	ck_assert_int_eq(gs->nerrors, GITSYNC_MAX_ERRORS);
	ck_assert_int_eq(gs->errors_dropped, 8);
	gitsync_spec_free(gs);
	plumb_buf_free(&b);
}
END_TEST

START_TEST(test_gitsync__interval_and_timeout_bounds)
{
	static const struct { const char *extra; double interval, timeout; int ic, tc; const char *error; } cases[] = {
		{ "'interval':'5s'", 10, 60, 1, 0, "spec.git.interval: below 10s (10s is used)" },
		{ "'interval':'0'", 10, 60, 1, 0, "spec.git.interval: below 10s (10s is used)" },
		{ "'interval':'500ms'", 10, 60, 1, 0, "spec.git.interval: below 10s (10s is used)" },
		{ "'interval':'10s'", 10, 60, 0, 0, NULL },
		{ "'interval':'1h30m'", 5400, 60, 0, 0, NULL },
		{ "'timeout':'1h'", 60, 600, 0, 1, "spec.git.timeout: above 10m (10m is used)" },
		{ "'timeout':'10m'", 60, 600, 0, 0, NULL },
		{ "'timeout':'1.5s'", 60, 1.5, 0, 0, NULL },
		{ "'interval':'1s','timeout':'11m'", 10, 600, 1, 1, NULL },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char git[512];
		snprintf(git, sizeof(git), "{'metadata':{'name':'x','namespace':'n'},'spec':{'git':{'url':'https://h/r',"
			"'ref':{'branch':'main'},%s},'targets':{'clusterNames':['a']}}}", cases[i].extra);
		gitsync_spec *gs = spec(git);
		ck_assert_msg(gs->git.interval == cases[i].interval && gs->git.timeout == cases[i].timeout,
			"%s: interval %g timeout %g", cases[i].extra, gs->git.interval, gs->git.timeout);
		ck_assert_msg(gs->git.interval_clamped == cases[i].ic && gs->git.timeout_clamped == cases[i].tc,
			"%s: clamped %d %d", cases[i].extra, gs->git.interval_clamped, gs->git.timeout_clamped);
		if (cases[i].error)
			ck_assert_msg(gs->nerrors == 1 && !strcmp(gs->errors[0], cases[i].error), "%s: %s",
				cases[i].extra, gs->nerrors ? gs->errors[0] : "no error");
		else if (!cases[i].ic && !cases[i].tc)
			ck_assert_int_eq(gs->nerrors, 0);
		gitsync_spec_free(gs);
	}
	cJSON *o = test_json("{'a':'90s','b':'x','c':7}");
	ck_assert(gitsync_duration(o, "a", 1) == 90);
	ck_assert(gitsync_duration(o, "b", 1) == 1);
	ck_assert(gitsync_duration(o, "c", 2) == 2);
	ck_assert(gitsync_duration(o, "missing", 3) == 3);
	cJSON_Delete(o);
}
END_TEST

/* Tag, else commit, else branch: what plumbd has always fetched. */
START_TEST(test_gitsync__ref_precedence)
{
	static const struct { const char *ref; source_ref_kind kind; const char *name; int error; } cases[] = {
		{ "{'branch':'main'}", SOURCE_REF_BRANCH, "main", 0 },
		{ "{'tag':'v1'}", SOURCE_REF_TAG, "v1", 0 },
		{ "{'commit':'abc1234'}", SOURCE_REF_COMMIT, "abc1234", 0 },
		{ "{'branch':'main','tag':'v1'}", SOURCE_REF_TAG, "v1", 1 },
		{ "{'branch':'main','commit':'abc1234'}", SOURCE_REF_COMMIT, "abc1234", 1 },
		{ "{'commit':'abc1234','tag':'v1'}", SOURCE_REF_TAG, "v1", 1 },
		{ "{'branch':'main','tag':'v1','commit':'abc1234'}", SOURCE_REF_TAG, "v1", 1 },
		{ "{}", SOURCE_REF_BRANCH, NULL, 1 },
		{ "{'tag':7,'branch':'main'}", SOURCE_REF_BRANCH, "main", 0 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cJSON *ref = test_json(cases[i].ref);
		const char *name = "unset";
		ck_assert_int_eq(gitsync_ref(ref, &name), cases[i].kind);
		if (cases[i].name)
			ck_assert_str_eq(name, cases[i].name);
		else
			ck_assert_ptr_null(name);
		cJSON_Delete(ref);

		char git[512];
		snprintf(git, sizeof(git), "{'metadata':{'name':'x','namespace':'n'},'spec':{'git':{'url':'https://h/r',"
			"'ref':%s},'targets':{'clusterNames':['a']}}}", cases[i].ref);
		gitsync_spec *gs = spec(git);
		ck_assert_int_eq(gs->git.ref_kind, cases[i].kind);
		if (cases[i].name)
			ck_assert_str_eq(gs->git.ref, cases[i].name);
		else
			ck_assert_ptr_null(gs->git.ref);
		ck_assert_int_eq(has_error(gs, "spec.git.ref: exactly one of branch, tag or commit"), cases[i].error);
		ck_assert_int_eq(gitsync_source_check(gs), cases[i].name ? 0 : PLUMB_EINVALID);
		source_fetch_opts fo;
		gitsync_fetch_opts(&fo, gs, 1234);
		ck_assert_int_eq(fo.kind, cases[i].kind);
		ck_assert_ptr_eq(fo.ref, gs->git.ref);
		ck_assert_uint_eq(fo.max_bytes, 1234);
		gitsync_spec_free(gs);
	}
	ck_assert_int_eq(gitsync_ref(NULL, &(const char *){ "x" }), SOURCE_REF_BRANCH);
}
END_TEST

START_TEST(test_gitsync__cluster_parse)
{
	gitsync_cluster *cl = cluster("{'metadata':{'name':'prod-eu','namespace':'plumb',"
		"'labels':{'env':'prod','region':'eu','n':3}},'spec':{'suspend':true,"
		"'kubeConfigSecretRef':{'name':'prod-eu-kc','key':'config','context':'admin@eu'}}}");
	ck_assert_str_eq(cl->ns, "plumb");
	ck_assert_str_eq(cl->name, "prod-eu");
	ck_assert_int_eq(cl->nlabels, 2);
	ck_assert_str_eq(cl->labels[0].name, "env");
	ck_assert_str_eq(cl->labels[0].value, "prod");
	ck_assert_str_eq(cl->labels[1].name, "region");
	ck_assert_str_eq(cl->labels[1].value, "eu");
	ck_assert_int_eq(cl->suspend, 1);
	ck_assert_str_eq(cl->kubeconfig_secret, "prod-eu-kc");
	ck_assert_str_eq(cl->kubeconfig_key, "config");
	ck_assert_str_eq(cl->kubeconfig_context, "admin@eu");
	gitsync_cluster_free(cl);

	cl = cluster("{'metadata':{'name':'mgmt','namespace':'plumb'},'spec':{'suspend':'yes'}}");
	ck_assert_int_eq(cl->nlabels, 0);
	ck_assert_int_eq(cl->suspend, 0);
	ck_assert_ptr_null(cl->kubeconfig_secret);
	ck_assert_str_eq(cl->kubeconfig_key, "kubeconfig");
	ck_assert_ptr_null(cl->kubeconfig_context);
	gitsync_cluster_free(cl);

	cl = cluster("{'metadata':{'name':'c','namespace':'n'},'spec':{'kubeConfigSecretRef':{'name':'s'}}}");
	ck_assert_str_eq(cl->kubeconfig_key, "kubeconfig");
	gitsync_cluster_free(cl);

	cJSON *s = cJSON_CreateString("x");
	ck_assert_int_eq(gitsync_cluster_parse(&cl, s), PLUMB_EINVALID);
	ck_assert_ptr_null(cl);
	cJSON_Delete(s);
}
END_TEST

static int selects(const char *targets, const char *cluster_json)
{
	char buf[2048];
	snprintf(buf, sizeof(buf), "{'metadata':{'name':'g','namespace':'plumb'},'spec':{'git':{'url':'https://h/r',"
		"'ref':{'branch':'main'}},'targets':%s}}", targets);
	gitsync_spec *gs = spec(buf);
	gitsync_cluster *cl = cluster(cluster_json);
	int r = gitsync_selects(gs, cl);
	gitsync_spec_free(gs);
	gitsync_cluster_free(cl);
	return r;
}

#define EU "{'metadata':{'name':'prod-eu','namespace':'plumb','labels':{'env':'prod','region':'eu'}}}"
#define US "{'metadata':{'name':'prod-us','namespace':'plumb','labels':{'env':'prod','region':'us','gpu':'a100'}}}"
#define DEV "{'metadata':{'name':'dev','namespace':'plumb'}}"
#define OTHER_NS "{'metadata':{'name':'prod-eu','namespace':'other','labels':{'env':'prod','region':'eu'}}}"

START_TEST(test_gitsync__selection)
{
	/* names */
	ck_assert_int_eq(selects("{'clusterNames':['prod-eu']}", EU), 1);
	ck_assert_int_eq(selects("{'clusterNames':['prod-eu']}", US), 0);
	ck_assert_int_eq(selects("{'clusterNames':['prod-eu']}", OTHER_NS), 0);
	ck_assert_int_eq(selects("{'clusterNames':[7,'dev']}", DEV), 1);
	/* matchLabels, ANDed */
	ck_assert_int_eq(selects("{'clusterSelector':{'matchLabels':{'env':'prod'}}}", EU), 1);
	ck_assert_int_eq(selects("{'clusterSelector':{'matchLabels':{'env':'prod','region':'us'}}}", EU), 0);
	ck_assert_int_eq(selects("{'clusterSelector':{'matchLabels':{'env':'prod','region':'us'}}}", US), 1);
	ck_assert_int_eq(selects("{'clusterSelector':{'matchLabels':{'env':'prod'}}}", DEV), 0);
	ck_assert_int_eq(selects("{'clusterSelector':{'matchLabels':{'env':'prod'}}}", OTHER_NS), 0);
	/* matchExpressions */
	ck_assert_int_eq(selects("{'clusterSelector':{'matchExpressions':[{'key':'region','operator':'In','values':['eu','ap']}]}}", EU), 1);
	ck_assert_int_eq(selects("{'clusterSelector':{'matchExpressions':[{'key':'region','operator':'In','values':['eu','ap']}]}}", US), 0);
	ck_assert_int_eq(selects("{'clusterSelector':{'matchExpressions':[{'key':'region','operator':'In','values':['eu']}]}}", DEV), 0);
	ck_assert_int_eq(selects("{'clusterSelector':{'matchExpressions':[{'key':'region','operator':'In','values':[]}]}}", EU), 0);
	ck_assert_int_eq(selects("{'clusterSelector':{'matchExpressions':[{'key':'region','operator':'NotIn','values':['eu']}]}}", EU), 0);
	ck_assert_int_eq(selects("{'clusterSelector':{'matchExpressions':[{'key':'region','operator':'NotIn','values':['eu']}]}}", US), 1);
	ck_assert_int_eq(selects("{'clusterSelector':{'matchExpressions':[{'key':'region','operator':'NotIn','values':['eu']}]}}", DEV), 1);
	ck_assert_int_eq(selects("{'clusterSelector':{'matchExpressions':[{'key':'gpu','operator':'Exists'}]}}", US), 1);
	ck_assert_int_eq(selects("{'clusterSelector':{'matchExpressions':[{'key':'gpu','operator':'Exists'}]}}", EU), 0);
	ck_assert_int_eq(selects("{'clusterSelector':{'matchExpressions':[{'key':'gpu','operator':'DoesNotExist'}]}}", EU), 1);
	ck_assert_int_eq(selects("{'clusterSelector':{'matchExpressions':[{'key':'gpu','operator':'DoesNotExist'}]}}", US), 0);
	/* labels and expressions together */
	ck_assert_int_eq(selects("{'clusterSelector':{'matchLabels':{'env':'prod'},'matchExpressions':[{'key':'gpu','operator':'DoesNotExist'}]}}", EU), 1);
	ck_assert_int_eq(selects("{'clusterSelector':{'matchLabels':{'env':'prod'},'matchExpressions':[{'key':'gpu','operator':'DoesNotExist'}]}}", US), 0);
	/* an empty selector selects every Cluster of the namespace */
	ck_assert_int_eq(selects("{'clusterSelector':{}}", EU), 1);
	ck_assert_int_eq(selects("{'clusterSelector':{}}", DEV), 1);
	ck_assert_int_eq(selects("{'clusterSelector':{}}", OTHER_NS), 0);
	/* names OR selector */
	ck_assert_int_eq(selects("{'clusterNames':['dev'],'clusterSelector':{'matchLabels':{'region':'eu'}}}", DEV), 1);
	ck_assert_int_eq(selects("{'clusterNames':['dev'],'clusterSelector':{'matchLabels':{'region':'eu'}}}", EU), 1);
	ck_assert_int_eq(selects("{'clusterNames':['dev'],'clusterSelector':{'matchLabels':{'region':'eu'}}}", US), 0);
	/* a selector that cannot match selects nothing; names still do */
	ck_assert_int_eq(selects("{'clusterSelector':{'matchExpressions':[{'key':'env','operator':'Gt'}]}}", EU), 0);
	ck_assert_int_eq(selects("{'clusterSelector':{'matchLabels':{'env':1}}}", EU), 0);
	ck_assert_int_eq(selects("{'clusterNames':['prod-eu'],'clusterSelector':{'matchExpressions':[{'operator':'Exists'}]}}", EU), 1);
	ck_assert_int_eq(selects("{'clusterSelector':'env=prod'}", EU), 0);
	/* no name, no selection */
	ck_assert_int_eq(selects("{'clusterSelector':{}}", "{'metadata':{'namespace':'plumb'}}"), 0);
}
END_TEST

/* The rendered objects as compact JSON (free with cJSON_free). */
static char *render_text(const char *gs_json, const char *cl_json, const gitsync_render_overrides *ovr,
	const char *yaml)
{
	gitsync_spec *gs = gs_json ? spec(gs_json) : NULL;
	gitsync_cluster *cl = cl_json ? cluster(cl_json) : NULL;
	manifest_file f = { "apps/cm.yaml", yaml, strlen(yaml) };
	manifest_errors errs = { 0 };
	gitsync_rendered out;
	int rc = gitsync_render(&out, gs, cl, &f, 1, ovr, &errs);
	ck_assert_msg(rc == 0, "render: %s", errs.count ? errs.msgs[0] : plumb_error_last());
	char *s = cJSON_PrintUnformatted(out.objects);
	ck_assert_uint_eq(out.count, (size_t)cJSON_GetArraySize(out.objects));
	for (size_t i = 0; i < out.count; i++)
		ck_assert_ptr_nonnull(out.origins[i]);
	ck_assert_ptr_null(out.origins[out.count]);
	gitsync_rendered_free(&out);
	ck_assert_ptr_null(out.objects);
	manifest_errors_free(&errs);
	gitsync_spec_free(gs);
	gitsync_cluster_free(cl);
	return s;
}

#define CM "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-${CLUSTER_NAME}\n" \
	"data:\n  team: ${TEAM}\n  region: ${CLUSTER_LABEL_region}\n"
#define GS "{'metadata':{'name':'shop','namespace':'plumb'},'spec':{'git':{'url':'https://h/r','ref':{'branch':'m'}}," \
	"'targets':{'clusterNames':['prod-eu']},'substitute':{'TEAM':'payments'}%s}}"

START_TEST(test_gitsync__render_for_cluster)
{
	char gs[1024];
	snprintf(gs, sizeof(gs), GS, "");
	char *s = render_text(gs, EU, NULL, CM);
	ck_assert_str_eq(s, "[{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"cm-prod-eu\","
		"\"namespace\":\"plumb\"},\"data\":{\"team\":\"payments\",\"region\":\"eu\"}}]");
	cJSON_free(s);

	/* spec.targetNamespace for objects that name none */
	snprintf(gs, sizeof(gs), GS, ",'targetNamespace':'shop'");
	s = render_text(gs, EU, NULL, CM);
	ck_assert_ptr_nonnull(strstr(s, "\"namespace\":\"shop\""));
	cJSON_free(s);

	/* an object's cluster-selector annotation sees the Cluster's labels */
	snprintf(gs, sizeof(gs), GS, "");
	s = render_text(gs, US, NULL, CM "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: eu-only\n"
		"  annotations: {plumb.dev/cluster-selector: region=eu}\n");
	ck_assert_ptr_null(strstr(s, "eu-only"));
	ck_assert_ptr_nonnull(strstr(s, "cm-prod-us"));
	cJSON_free(s);

	/* plumbctl's flags win over the GitSync and the Cluster */
	manifest_var vars[] = { { "TEAM", "search" } }, labels[] = { { "region", "ap" } };
	gitsync_render_overrides ovr = { vars, 1, labels, 1, "local", "dev-ns" };
	s = render_text(gs, EU, &ovr, CM);
	ck_assert_str_eq(s, "[{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"cm-local\","
		"\"namespace\":\"dev-ns\"},\"data\":{\"team\":\"search\",\"region\":\"ap\"}}]");
	cJSON_free(s);

	/* no GitSync, no Cluster: only the flags; the namespace "default" */
	manifest_var region[] = { { "region", "us" } };
	gitsync_render_overrides only = { vars, 1, region, 1, "c3", NULL };
	s = render_text(NULL, NULL, &only, CM);
	ck_assert_str_eq(s, "[{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"cm-c3\","
		"\"namespace\":\"default\"},\"data\":{\"team\":\"search\",\"region\":\"us\"}}]");
	cJSON_free(s);
}
END_TEST

START_TEST(test_gitsync__render_errors)
{
	char gsj[1024];
	snprintf(gsj, sizeof(gsj), GS, "");
	gitsync_spec *gs = spec(gsj);
	gitsync_cluster *cl = cluster(DEV);
	const char *yaml = CM;   /* dev has no region label */
	manifest_file f = { "apps/cm.yaml", yaml, strlen(yaml) };
	manifest_errors errs = { 0 };
	gitsync_rendered out;
	ck_assert_int_eq(gitsync_render(&out, gs, cl, &f, 1, NULL, &errs), PLUMB_EINVALID);
	ck_assert_ptr_null(out.objects);
	ck_assert_uint_ge(errs.count, 1);
	ck_assert_msg(strstr(errs.msgs[0], "apps/cm.yaml:") && strstr(errs.msgs[0], "CLUSTER_LABEL_region"),
		"%s", errs.msgs[0]);
	char *joined = gitsync_join_errors(&errs);
	ck_assert_str_eq(joined, errs.msgs[0]);
	free(joined);
	manifest_errors_free(&errs);

	manifest_errors many = { 0 };
	char *msgs[7] = { "a", "b", "c", "d", "e", "f", "g" };
	many.msgs = msgs;
	many.count = 7;
	many.dropped = 2;
	joined = gitsync_join_errors(&many);
	ck_assert_str_eq(joined, "a; b; c; d; e; and 4 more");
	free(joined);
	gitsync_spec_free(gs);
	gitsync_cluster_free(cl);
}
END_TEST

START_TEST(test_gitsync__apply_opts)
{
	apply_opts ao;
	memset(&ao, 0x5a, sizeof(ao));
	gitsync_apply_opts(&ao, NULL);
	ck_assert_int_eq(ao.prune, 1);
	ck_assert_int_eq(ao.allow_empty, 0);
	ck_assert_int_eq(ao.drift, APPLY_DRIFT_CORRECT);
	ck_assert_int_eq(ao.adopt, 0);
	ck_assert_int_eq(ao.dry_run, 0);
	ck_assert_ptr_null(ao.live);
	ck_assert_ptr_null(ao.origins);

	gitsync_spec *gs = with("'prune':false,'allowEmpty':true,'adopt':true,'driftPolicy':'Report'");
	gitsync_apply_opts(&ao, gs);
	ck_assert_int_eq(ao.prune, 0);
	ck_assert_int_eq(ao.allow_empty, 1);
	ck_assert_int_eq(ao.drift, APPLY_DRIFT_REPORT);
	ck_assert_int_eq(ao.adopt, 1);
	gitsync_spec_free(gs);

	gs = with("");
	gitsync_apply_opts(&ao, gs);
	ck_assert_int_eq(ao.prune, 1);
	ck_assert_int_eq(ao.allow_empty, 0);
	ck_assert_int_eq(ao.drift, APPLY_DRIFT_CORRECT);
	ck_assert_int_eq(ao.adopt, 0);
	gitsync_spec_free(gs);
}
END_TEST

START_TEST(test_gitsync__user)
{
	char user[300];
	gitsync_spec *gs = with("'serviceAccountName':'deployer'");
	ck_assert_int_eq(gitsync_user(user, sizeof(user), gs, "fallback"), 0);
	ck_assert_str_eq(user, "system:serviceaccount:plumb:deployer");
	gitsync_spec_free(gs);
	gs = with("");
	ck_assert_int_eq(gitsync_user(user, sizeof(user), gs, "fallback"), 0);
	ck_assert_str_eq(user, "system:serviceaccount:plumb:fallback");
	ck_assert_int_eq(gitsync_user(user, sizeof(user), gs, NULL), 0);
	ck_assert_str_eq(user, "");
	gitsync_spec_free(gs);
	gs = with("'serviceAccountName':'Not_A_Name'");
	ck_assert_int_eq(gitsync_user(user, sizeof(user), gs, NULL), PLUMB_EINVALID);
	gitsync_spec_free(gs);
}
END_TEST

#define KUBECONFIG \
	"apiVersion: v1\nkind: Config\ncurrent-context: a\n" \
	"clusters:\n- name: c\n  cluster: {server: 'https://h:6443'}\n" \
	"- name: lax\n  cluster: {server: 'https://lax:6443', insecure-skip-tls-verify: true}\n" \
	"users:\n- name: u\n  user: {token: t0ken}\n" \
	"contexts:\n- name: a\n  context: {cluster: c, user: u}\n- name: b\n  context: {cluster: lax, user: u}\n"

static cJSON *secret_with(const char *key, const char *text)
{
	char *b64 = NULL;
	ck_assert_int_eq(plumb_base64_encode(&b64, text, strlen(text)), 0);
	cJSON *sec = test_json("{'metadata':{'name':'kc','namespace':'plumb','resourceVersion':'42'},'data':{}}");
	cJSON_AddStringToObject(cJSON_GetObjectItem(sec, "data"), key, b64);
	free(b64);
	return sec;
}

START_TEST(test_gitsync__kubeconfig_from_secret)
{
	gitsync_cluster *cl = cluster("{'metadata':{'name':'eu','namespace':'plumb'},"
		"'spec':{'kubeConfigSecretRef':{'name':'kc'}}}");
	cJSON *sec = secret_with("kubeconfig", KUBECONFIG);
	char *data = NULL, *id;
	size_t len = 0;
	kube_config *cfg = NULL;

	ck_assert_int_eq(gitsync_kubeconfig_data(&data, &len, cl, sec), 0);
	ck_assert_uint_eq(len, strlen(KUBECONFIG));
	ck_assert_int_eq(gitsync_kubeconfig_load(&cfg, cl, data, len, NULL), 0);
	ck_assert_str_eq(kube_config_server(cfg), "https://h:6443");
	ck_assert_str_eq(kube_config_context(cfg), "a");
	kube_config_free(cfg);
	cfg = NULL;
	id = gitsync_kubeconfig_id(cl, sec);
	ck_assert_str_eq(id, "plumb/kc|42|kubeconfig|");
	free(id);

	/* the context, and the lockdown: an insecure cluster is refused naming the field */
	free(cl->kubeconfig_context);
	cl->kubeconfig_context = plumb_strdup("b");
	ck_assert_int_eq(gitsync_kubeconfig_load(&cfg, cl, data, len, NULL), PLUMB_EINSECURE);
	ck_assert_ptr_null(cfg);
	ck_assert_msg(strstr(plumb_error_last(), "secret plumb/kc") &&
		strstr(plumb_error_last(), "insecure-skip-tls-verify: refused"), "%s", plumb_error_last());
	kube_config_policy lax = { .allow_insecure = 1 };
	ck_assert_int_eq(gitsync_kubeconfig_load(&cfg, cl, data, len, &lax), 0);
	ck_assert_str_eq(kube_config_server(cfg), "https://lax:6443");
	kube_config_free(cfg);
	id = gitsync_kubeconfig_id(cl, sec);
	ck_assert_str_eq(id, "plumb/kc|42|kubeconfig|b");
	free(id);
	gitsync_kubeconfig_wipe(data, len);
	gitsync_kubeconfig_wipe(NULL, 0);

	/* the errors */
	ck_assert_int_eq(gitsync_kubeconfig_data(&data, &len, cl, NULL), PLUMB_ENOTFOUND);
	ck_assert_str_eq(plumb_error_last(), "kubeconfig secret plumb/kc not found");
	free(cl->kubeconfig_key);
	cl->kubeconfig_key = plumb_strdup("config");
	ck_assert_int_eq(gitsync_kubeconfig_data(&data, &len, cl, sec), PLUMB_EINVALID);
	ck_assert_str_eq(plumb_error_last(), "kubeconfig secret plumb/kc has no key \"config\"");
	ck_assert_ptr_null(data);
	cJSON_Delete(sec);
	sec = test_json("{'data':{'config':'!!!'}}");
	ck_assert_int_eq(gitsync_kubeconfig_data(&data, &len, cl, sec), PLUMB_EINVALID);
	ck_assert_str_eq(plumb_error_last(), "kubeconfig secret plumb/kc: data is not base64");
	cJSON_Delete(sec);
	gitsync_cluster_free(cl);

	cl = cluster("{'metadata':{'name':'mgmt','namespace':'plumb'}}");
	ck_assert_int_eq(gitsync_kubeconfig_data(&data, &len, cl, NULL), PLUMB_EINVALID);
	ck_assert_str_eq(plumb_error_last(), "Cluster plumb/mgmt has no spec.kubeConfigSecretRef");
	gitsync_cluster_free(cl);
}
END_TEST

START_TEST(test_gitsync__git_credentials)
{
	source_credentials *creds = (source_credentials *)1;
	gitsync_spec *gs = with("");
	ck_assert_int_eq(gitsync_git_credentials(&creds, gs, NULL), 0);
	ck_assert_ptr_null(creds);
	gitsync_spec_free(gs);

	gs = spec("{'metadata':{'name':'x','namespace':'plumb'},'spec':{'git':{'url':'https://h/r',"
		"'ref':{'branch':'main'},'secretRef':{'name':'shop-git'}},'targets':{'clusterNames':['a']}}}");
	ck_assert_int_eq(gitsync_git_credentials(&creds, gs, NULL), PLUMB_ENOTFOUND);
	ck_assert_str_eq(plumb_error_last(), "git secret plumb/shop-git not found");
	ck_assert_ptr_null(creds);
	cJSON *sec = secret_with("password", "hunter2");
	ck_assert_int_eq(gitsync_git_credentials(&creds, gs, sec), 0);
	ck_assert_ptr_nonnull(creds);
	source_credentials_free(creds);
	cJSON_Delete(sec);
	gitsync_spec_free(gs);
}
END_TEST

START_TEST(test_gitsync__render_and_helm_fields)
{
	/* absent: detect; no helm; includeCRDs defaults on */
	gitsync_spec *gs = with("");
	ck_assert_int_eq(gs->render, RENDER_AUTO);
	ck_assert_int_eq(gs->helm.set, 0);
	ck_assert_ptr_null(gs->helm.release_name);
	gitsync_spec_free(gs);
	static const struct { const char *text; render_kind kind; } kinds[] = {
		{ "plain", RENDER_PLAIN }, { "kustomize", RENDER_KUSTOMIZE }, { "helm", RENDER_HELM } };
	for (size_t i = 0; i < 3; i++) {
		char buf[128];
		snprintf(buf, sizeof(buf), "'render':'%s'", kinds[i].text);
		gs = with(buf);
		ck_assert_int_eq(gs->render, kinds[i].kind);
		ck_assert_int_eq(gs->nerrors, 0);
		gitsync_spec_free(gs);
	}
	/* every helm field */
	gs = with("'targetNamespace':'shop-prod','helm':{'chart':'charts/shop','releaseName':'web','namespace':'web-ns',"
		"'valuesFiles':['values.yaml','env/${CLUSTER_LABEL_env}.yaml'],'values':{'replicas':3,'image':{'tag':'v2'}},"
		"'includeCRDs':false}");
	ck_assert_int_eq(gs->nerrors, 0);
	ck_assert_int_eq(gs->helm.set, 1);
	ck_assert_str_eq(gs->helm.chart, "charts/shop");
	ck_assert_str_eq(gs->helm.release_name, "web");
	ck_assert_str_eq(gs->helm.namespace, "web-ns");
	ck_assert_uint_eq(gs->helm.nvalues_files, 2);
	ck_assert_str_eq(gs->helm.values_files[1], "env/${CLUSTER_LABEL_env}.yaml");
	ck_assert_str_eq(gs->helm.values_json, "{\"replicas\":3,\"image\":{\"tag\":\"v2\"}}");
	ck_assert_int_eq(gs->helm.include_crds, 0);
	gitsync_spec_free(gs);
	/* the defaults: release = the GitSync's name, namespace = targetNamespace, else the GitSync's */
	gs = with("'targetNamespace':'shop-prod','helm':{}");
	ck_assert_int_eq(gs->helm.set, 1);
	ck_assert_ptr_null(gs->helm.chart);
	ck_assert_str_eq(gs->helm.release_name, "shop");
	ck_assert_str_eq(gs->helm.namespace, "shop-prod");
	ck_assert_int_eq(gs->helm.include_crds, 1);
	ck_assert_ptr_null(gs->helm.values_json);
	gitsync_spec_free(gs);
	gs = with("'helm':{}");
	ck_assert_str_eq(gs->helm.namespace, "plumb");
	gitsync_spec_free(gs);

	/* field errors, one each */
	static const struct { const char *extra; const char *error; } cases[] = {
		{ "'render':'jsonnet'", "spec.render: must be plain, kustomize or helm" },
		{ "'render':'auto'", "spec.render: must be plain, kustomize or helm" },
		{ "'render':3", "spec.render: must be plain, kustomize or helm" },
		{ "'helm':'chart'", "spec.helm: not an object" },
		{ "'helm':{'chart':1}", "spec.helm.chart: not a string" },
		{ "'helm':{'releaseName':true}", "spec.helm.releaseName: not a string" },
		{ "'helm':{'valuesFiles':'v.yaml'}", "spec.helm.valuesFiles: not a list" },
		{ "'helm':{'valuesFiles':['a.yaml',2]}", "spec.helm.valuesFiles[1]: not a path" },
		{ "'helm':{'values':[1]}", "spec.helm.values: not an object" },
		{ "'helm':{'includeCRDs':'yes'}", "spec.helm.includeCRDs: not a boolean" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		gs = with(cases[i].extra);
		ck_assert_msg(gs->nerrors == 1 && !strcmp(gs->errors[0], cases[i].error),
			"%s: got %zu errors, first \"%s\", want \"%s\"", cases[i].extra, gs->nerrors,
			gs->nerrors ? gs->errors[0] : "", cases[i].error);
		if (i < 3)
			ck_assert_int_eq(gs->render, RENDER_AUTO);
		gitsync_spec_free(gs);
	}
	gs = with("'helm':{'valuesFiles':['a.yaml',2,'b.yaml'],'includeCRDs':'yes'}");
	ck_assert_uint_eq(gs->helm.nvalues_files, 2);
	ck_assert_str_eq(gs->helm.values_files[1], "b.yaml");
	ck_assert_int_eq(gs->helm.include_crds, 1);
	gitsync_spec_free(gs);
}
END_TEST

START_TEST(test_gitsync__path_per_cluster)
{
	gitsync_cluster *cl = cluster("{'metadata':{'name':'c2','namespace':'plumb','labels':{'env':'prod',"
		"'example.com/tier':'gold','bad':'a/b'}}}");
	char *p = NULL;
	ck_assert_int_eq(gitsync_path_per_cluster("overlays/${CLUSTER_LABEL_env}"), 1);
	ck_assert_int_eq(gitsync_path_per_cluster("overlays/prod"), 0);
	ck_assert_int_eq(gitsync_path_per_cluster(NULL), 0);
	ck_assert_int_eq(gitsync_resolve_path(&p, "spec.git.path", "./overlays/${CLUSTER_LABEL_env}/", cl, NULL), 0);
	ck_assert_str_eq(p, "overlays/prod");
	free(p);
	ck_assert_int_eq(gitsync_resolve_path(&p, "spec.git.path", "clusters/${CLUSTER_NAME}-${CLUSTER_LABEL_example.com/tier}",
		cl, NULL), 0);
	ck_assert_str_eq(p, "clusters/c2-gold");
	free(p);
	ck_assert_int_eq(gitsync_resolve_path(&p, "spec.git.path", "plain/path", cl, NULL), 0);
	ck_assert_str_eq(p, "plain/path");
	free(p);
	ck_assert_int_eq(gitsync_resolve_path(&p, "spec.git.path", "", NULL, NULL), 0);
	ck_assert_str_eq(p, "");
	free(p);
	/* the overrides win (plumbctl --cluster-name / --label) */
	manifest_var lab = { "env", "staging" };
	gitsync_render_overrides ovr = { .labels = &lab, .nlabels = 1, .cluster_name = "local" };
	ck_assert_int_eq(gitsync_resolve_path(&p, "spec.git.path", "${CLUSTER_NAME}/${CLUSTER_LABEL_env}", cl, &ovr), 0);
	ck_assert_str_eq(p, "local/staging");
	free(p);

	static const struct { const char *path; const char *error; } bad[] = {
		{ "overlays/${CLUSTER_LABEL_region}", "spec.git.path \"overlays/${CLUSTER_LABEL_region}\": cluster c2 has no label region" },
		{ "overlays/${ENV}", "spec.git.path \"overlays/${ENV}\": ${ENV}: only ${CLUSTER_NAME} and ${CLUSTER_LABEL_<key>} may be used in a path" },
		{ "overlays/${CLUSTER_NAME", "spec.git.path \"overlays/${CLUSTER_NAME\": unterminated ${" },
		{ "overlays/${CLUSTER_LABEL_bad}", "spec.git.path \"overlays/${CLUSTER_LABEL_bad}\": ${CLUSTER_LABEL_bad} is \"a/b\", not a folder name" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		p = NULL;
		ck_assert_int_eq(gitsync_resolve_path(&p, "spec.git.path", bad[i].path, cl, NULL), PLUMB_EINVALID);
		ck_assert_ptr_null(p);
		ck_assert_str_eq(plumb_error_last(), bad[i].error);
	}
	/* a value that climbs out of the repository */
	gitsync_cluster *evil = cluster("{'metadata':{'name':'c3','namespace':'plumb','labels':{'env':'..'}}}");
	ck_assert_int_eq(gitsync_resolve_path(&p, "spec.helm.valuesFiles[0]", "v/${CLUSTER_LABEL_env}/x.yaml", evil, NULL),
		PLUMB_EINVALID);
	ck_assert_ptr_nonnull(strstr(plumb_error_last(), "spec.helm.valuesFiles[0] \"v/${CLUSTER_LABEL_env}/x.yaml\" for cluster c3"));
	ck_assert_int_eq(gitsync_resolve_path(&p, "spec.git.path", "${CLUSTER_NAME}", NULL, NULL), PLUMB_EINVALID);
	gitsync_cluster_free(evil);
	gitsync_cluster_free(cl);
}
END_TEST

/* ---- the render cache --------------------------------------------------------- */

typedef struct {
	int runs;
	int fail;           /* 1: the revision's error; 2: plumbd's own (retry) */
	unsigned sleep_ms;  /* holds the run, so a second asker waits */
	const char *text;
	pthread_mutex_t lock;
} fake_run;

static int fake_fn(gitsync_render_output *out, void *vctx)
{
	fake_run *f = vctx;
	pthread_mutex_lock(&f->lock);
	f->runs++;
	pthread_mutex_unlock(&f->lock);
	if (f->sleep_ms)
		usleep(f->sleep_ms * 1000);
	if (f->fail) {
		out->retry = f->fail == 2;
		return plumb_error_set(PLUMB_EINVALID, "template error in %s", f->text);
	}
	out->yaml = plumb_strdup(f->text);
	out->len = strlen(f->text);
	out->seconds = 0.5;
	return 0;
}

typedef struct {
	gitsync_render_cache *c;
	fake_run *f;
	int hit, rc;
	char yaml[64];
} asker;

static void *ask(void *v)
{
	asker *a = v;
	gitsync_render_output o;
	a->rc = gitsync_render_cache_get(&o, &a->hit, a->c, "ns/app", "c1", "key-A", 5, fake_fn, a->f);
	snprintf(a->yaml, sizeof(a->yaml), "%s", o.yaml ? o.yaml : "");
	gitsync_render_output_clear(&o);
	return NULL;
}

/* Clusters asking for the same inputs get one run, also when they ask at
 * the same time; other inputs, another run. */
START_TEST(test_gitsync__render_cache_one_run)
{
	gitsync_render_cache *c;
	gitsync_render_cache_stats st;
	fake_run f = { .sleep_ms = 200, .text = "kind: A\n", .lock = PTHREAD_MUTEX_INITIALIZER };
	ck_assert_int_eq(gitsync_render_cache_new(&c, 0, 0), 0);
	asker a = { c, &f, 0, 0, "" }, b = a;
	pthread_t ta, tb;
	pthread_create(&ta, NULL, ask, &a);
	usleep(50 * 1000);
	pthread_create(&tb, NULL, ask, &b);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	ck_assert_int_eq(f.runs, 1);
	ck_assert_int_eq(a.rc, 0);
	ck_assert_int_eq(b.rc, 0);
	ck_assert_int_eq(a.hit + b.hit, 1);
	ck_assert_str_eq(a.yaml, "kind: A\n");
	ck_assert_str_eq(b.yaml, "kind: A\n");
	gitsync_render_cache_stats_get(c, &st);
	ck_assert_uint_eq(st.hits, 1);
	ck_assert_uint_eq(st.waits, 1);
	ck_assert_uint_eq(st.misses, 1);

	/* other inputs of the same commit: a run of their own */
	gitsync_render_output o;
	int hit = 1;
	f.sleep_ms = 0;
	f.text = "kind: B\n";
	ck_assert_int_eq(gitsync_render_cache_get(&o, &hit, c, "ns/app", "c1", "key-B", 5, fake_fn, &f), 0);
	ck_assert_int_eq(hit, 0);
	ck_assert_int_eq(f.runs, 2);
	ck_assert_str_eq(o.yaml, "kind: B\n");
	ck_assert(o.seconds == 0.5);
	gitsync_render_output_clear(&o);
	gitsync_render_cache_stats_get(c, &st);
	ck_assert_uint_eq(st.entries, 2);

	/* a new commit of the owner drops its entries of the old one */
	ck_assert_int_eq(gitsync_render_cache_get(&o, &hit, c, "ns/app", "c2", "key-A2", 6, fake_fn, &f), 0);
	gitsync_render_output_clear(&o);
	gitsync_render_cache_stats_get(c, &st);
	ck_assert_uint_eq(st.entries, 1);
	ck_assert_int_eq(gitsync_render_cache_get(&o, &hit, c, "ns/app", "c1", "key-A", 5, fake_fn, &f), 0);
	ck_assert_int_eq(hit, 0);   /* ran again */
	gitsync_render_output_clear(&o);
	gitsync_render_cache_free(c);
}
END_TEST

/* The revision's failure is kept (same inputs, same error, no second
 * run); plumbd's own is not; caps by bytes and entries evict the least
 * recently used; no cache runs every time. */
START_TEST(test_gitsync__render_cache_failures_and_caps)
{
	gitsync_render_cache *c;
	gitsync_render_cache_stats st;
	gitsync_render_output o;
	int hit;
	fake_run f = { .fail = 1, .text = "chart/", .lock = PTHREAD_MUTEX_INITIALIZER };
	ck_assert_int_eq(gitsync_render_cache_new(&c, 4096, 3), 0);
	ck_assert_int_eq(gitsync_render_cache_get(&o, &hit, c, "ns/a", "c1", "k1", 2, fake_fn, &f), PLUMB_EINVALID);
	ck_assert_str_eq(o.errmsg, "template error in chart/");
	gitsync_render_output_clear(&o);
	ck_assert_int_eq(gitsync_render_cache_get(&o, &hit, c, "ns/a", "c1", "k1", 2, fake_fn, &f), PLUMB_EINVALID);
	ck_assert_int_eq(hit, 1);
	ck_assert_int_eq(f.runs, 1);
	ck_assert_str_eq(plumb_error_last(), "template error in chart/");
	ck_assert_int_eq(o.retry, 0);
	gitsync_render_output_clear(&o);

	f.fail = 2;
	ck_assert_int_eq(gitsync_render_cache_get(&o, &hit, c, "ns/a", "c1", "k2", 2, fake_fn, &f), PLUMB_EINVALID);
	ck_assert_int_eq(o.retry, 1);
	gitsync_render_output_clear(&o);
	ck_assert_int_eq(gitsync_render_cache_get(&o, &hit, c, "ns/a", "c1", "k2", 2, fake_fn, &f), PLUMB_EINVALID);
	ck_assert_int_eq(hit, 0);
	ck_assert_int_eq(f.runs, 3);
	gitsync_render_output_clear(&o);

	/* entries: at most 3 */
	f.fail = 0;
	f.text = "x";
	for (int i = 0; i < 5; i++) {
		char key[8];
		snprintf(key, sizeof(key), "e%d", i);
		ck_assert_int_eq(gitsync_render_cache_get(&o, &hit, c, "ns/b", "c1", key, strlen(key), fake_fn, &f), 0);
		gitsync_render_output_clear(&o);
	}
	gitsync_render_cache_stats_get(c, &st);
	ck_assert_uint_le(st.entries, 3);
	/* the newest is kept, the oldest gone */
	ck_assert_int_eq(gitsync_render_cache_get(&o, &hit, c, "ns/b", "c1", "e4", 2, fake_fn, &f), 0);
	ck_assert_int_eq(hit, 1);
	gitsync_render_output_clear(&o);
	ck_assert_int_eq(gitsync_render_cache_get(&o, &hit, c, "ns/b", "c1", "e0", 2, fake_fn, &f), 0);
	ck_assert_int_eq(hit, 0);
	gitsync_render_output_clear(&o);

	/* an output larger than the byte cap is never kept */
	static char big[8192];
	memset(big, 'y', sizeof(big) - 1);
	f.text = big;
	ck_assert_int_eq(gitsync_render_cache_get(&o, &hit, c, "ns/c", "c1", "big", 3, fake_fn, &f), 0);
	ck_assert_uint_eq(o.len, sizeof(big) - 1);
	gitsync_render_output_clear(&o);
	ck_assert_int_eq(gitsync_render_cache_get(&o, &hit, c, "ns/c", "c1", "big", 3, fake_fn, &f), 0);
	ck_assert_int_eq(hit, 0);
	gitsync_render_output_clear(&o);
	gitsync_render_cache_stats_get(c, &st);
	ck_assert_uint_le(st.bytes, 4096);
	gitsync_render_cache_free(c);

	int before = f.runs;
	f.text = "z";
	ck_assert_int_eq(gitsync_render_cache_get(&o, &hit, NULL, "ns/c", "c1", "k", 1, fake_fn, &f), 0);
	gitsync_render_output_clear(&o);
	ck_assert_int_eq(gitsync_render_cache_get(&o, &hit, NULL, "ns/c", "c1", "k", 1, fake_fn, &f), 0);
	gitsync_render_output_clear(&o);
	ck_assert_int_eq(f.runs, before + 2);
}
END_TEST


int main(void)
{
	Suite *s = suite_create("gitsync");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_gitsync__parse_every_field);
	tcase_add_test(tc, test_gitsync__parse_defaults);
	tcase_add_test(tc, test_gitsync__field_errors);
	tcase_add_test(tc, test_gitsync__interval_and_timeout_bounds);
	tcase_add_test(tc, test_gitsync__ref_precedence);
	tcase_add_test(tc, test_gitsync__cluster_parse);
	tcase_add_test(tc, test_gitsync__selection);
	tcase_add_test(tc, test_gitsync__render_for_cluster);
	tcase_add_test(tc, test_gitsync__render_errors);
	tcase_add_test(tc, test_gitsync__apply_opts);
	tcase_add_test(tc, test_gitsync__user);
	tcase_add_test(tc, test_gitsync__kubeconfig_from_secret);
	tcase_add_test(tc, test_gitsync__git_credentials);
	tcase_add_test(tc, test_gitsync__render_and_helm_fields);
	tcase_add_test(tc, test_gitsync__path_per_cluster);
	tcase_add_test(tc, test_gitsync__render_cache_one_run);
	tcase_add_test(tc, test_gitsync__render_cache_failures_and_caps);
	suite_add_tcase(s, tc);
	return test_run(s);
}
