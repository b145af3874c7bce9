/* Unit tests for pkg/health: each kind's rules (Current, InProgress,
 * Failed, Terminating), the generic checks every kind goes through,
 * malformed objects from a tenant's cluster (Unknown, never a crash),
 * messages cut safely, the paths each kind reads, and the projection: every
 * object checked here is also reduced with health_project() and must have
 * exactly the same health (state, reason, message) as the whole object. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "test_json.h"
#include "health/health.h"


/* health_of(obj) and health_of(health_project(obj)) must agree. */
static health_result of_obj(const cJSON *j)
{
	health_result r, rp;
	cJSON *p = NULL;
	ck_assert_int_eq(health_of(&r, j), 0);
	ck_assert_int_eq(health_project(&p, j), 0);
	ck_assert_int_eq(health_of(&rp, p), 0);
	char *ps = cJSON_PrintUnformatted(p);
	ck_assert_msg(rp.state == r.state && !strcmp(rp.reason, r.reason) && !strcmp(rp.message, r.message),
		"projection %s reads %s/%s/%s, the object %s/%s/%s", ps, health_state_name(rp.state), rp.reason,
		rp.message, health_state_name(r.state), r.reason, r.message);
	free(ps);
	cJSON_Delete(p);
	ck_assert_uint_lt(strlen(r.message), sizeof(r.message));
	ck_assert_uint_lt(strlen(r.reason), sizeof(r.reason));
	ck_assert_msg(r.reason[0] != '\0', "no reason for %s", r.message);
	return r;
}

static health_result of(const char *text)
{
	cJSON *j = test_json(text);
	health_result r = of_obj(j);
	cJSON_Delete(j);
	return r;
}

/* The state, and the reason and message when given. */
static void expect_at(int line, const char *text, health_state st, const char *reason, const char *msg)
{
	health_result r = of(text);
	ck_assert_msg(r.state == st, "line %d: %s: state %s (%s: %s), want %s", line, text,
		health_state_name(r.state), r.reason, r.message, health_state_name(st));
	if (reason)
		ck_assert_msg(!strcmp(r.reason, reason), "line %d: reason %s, want %s (%s)", line, r.reason, reason,
			r.message);
	if (msg)
		ck_assert_msg(!strcmp(r.message, msg), "line %d: message '%s', want '%s'", line, r.message, msg);
}
#define expect(text, st, reason, msg) expect_at(__LINE__, text, st, reason, msg)

/* A Deployment shop/web with spec members spec and status members status. */
static char *deploy(const char *spec, const char *status)
{
	static char buf[4096];
	snprintf(buf, sizeof(buf), "{'apiVersion':'apps/v1','kind':'Deployment',"
		"'metadata':{'name':'web','namespace':'shop','generation':4},"
		"'spec':{'progressDeadlineSeconds':600%s%s},'status':{'observedGeneration':4%s%s}}",
		*spec ? "," : "", spec, *status ? "," : "", status);
	return buf;
}

#define DEP_OK_CONDS "'conditions':[{'type':'Available','status':'True'}," \
	"{'type':'Progressing','status':'True','reason':'NewReplicaSetAvailable'}]"
#define DEP_3_OF_3 "'replicas':3,'updatedReplicas':3,'readyReplicas':3,'availableReplicas':3"

START_TEST(test_health__state_names)
{
	ck_assert_str_eq(health_state_name(HEALTH_CURRENT), "Current");
	ck_assert_str_eq(health_state_name(HEALTH_IN_PROGRESS), "InProgress");
	ck_assert_str_eq(health_state_name(HEALTH_FAILED), "Failed");
	ck_assert_str_eq(health_state_name(HEALTH_TERMINATING), "Terminating");
	ck_assert_str_eq(health_state_name(HEALTH_UNKNOWN), "Unknown");
	ck_assert_str_eq(health_state_name((health_state)42), "Unknown");
	ck_assert_int_eq(health_of(NULL, NULL), PLUMB_EINVALID);
	health_result r;
	ck_assert_int_eq(health_of(&r, NULL), 0);
	ck_assert_int_eq(r.state, HEALTH_UNKNOWN);
	cJSON *p = NULL;
	ck_assert_int_eq(health_project(&p, NULL), PLUMB_EINVALID);
	ck_assert_ptr_null(p);
}
END_TEST

START_TEST(test_health__terminating)
{
	expect("{'apiVersion':'v1','kind':'ConfigMap','metadata':{'name':'c','namespace':'a',"
		"'deletionTimestamp':'2026-12-01T10:00:00Z'}}", HEALTH_TERMINATING, "Terminating",
		"ConfigMap a/c: being deleted");
	/* before everything else, even a failed Deployment */
	cJSON *j = test_json(deploy("'replicas':3", "'conditions':[{'type':'Progressing','status':'False',"
		"'reason':'ProgressDeadlineExceeded'}]"));
	cJSON_AddStringToObject(cJSON_GetObjectItem(j, "metadata"), "deletionTimestamp", "2026-12-01T10:00:00Z");
	ck_assert_int_eq(of_obj(j).state, HEALTH_TERMINATING);
	cJSON_Delete(j);
	/* an empty deletionTimestamp is not a deletion */
	expect("{'apiVersion':'v1','kind':'ConfigMap','metadata':{'name':'c','deletionTimestamp':''}}",
		HEALTH_CURRENT, NULL, NULL);
}
END_TEST

START_TEST(test_health__observed_generation)
{
	expect("{'apiVersion':'apps/v1','kind':'Deployment','metadata':{'name':'web','namespace':'shop',"
		"'generation':4},'status':{'observedGeneration':3," DEP_3_OF_3 "," DEP_OK_CONDS "},"
		"'spec':{'replicas':3}}", HEALTH_IN_PROGRESS, "GenerationNotObserved",
		"Deployment shop/web: observed generation 3 < 4");
	/* any kind with both */
	expect("{'apiVersion':'example.com/v1','kind':'Widget','metadata':{'name':'w','generation':2},"
		"'status':{'observedGeneration':1,'conditions':[{'type':'Ready','status':'True'}]}}",
		HEALTH_IN_PROGRESS, "GenerationNotObserved", "Widget w: observed generation 1 < 2");
	/* only one of them: not checked */
	expect("{'apiVersion':'example.com/v1','kind':'Widget','metadata':{'name':'w','generation':2},"
		"'status':{'conditions':[{'type':'Ready','status':'True'}]}}", HEALTH_CURRENT, "Ready", NULL);
	expect("{'apiVersion':'example.com/v1','kind':'Widget','metadata':{'name':'w'},"
		"'status':{'observedGeneration':9}}", HEALTH_CURRENT, NULL, NULL);
	/* equal: on to the kind's rules */
	expect(deploy("'replicas':3", DEP_3_OF_3 "," DEP_OK_CONDS), HEALTH_CURRENT, "Available",
		"Deployment shop/web: 3 replicas available");
}
END_TEST

START_TEST(test_health__stalled_and_reconciling)
{
	expect("{'apiVersion':'example.com/v1','kind':'Widget','metadata':{'name':'w','namespace':'n'},"
		"'status':{'conditions':[{'type':'Stalled','status':'True','reason':'BadConfig',"
		"'message':'field x is wrong'},{'type':'Ready','status':'True'}]}}",
		HEALTH_FAILED, "BadConfig", "Widget n/w: stalled: field x is wrong");
	expect("{'apiVersion':'example.com/v1','kind':'Widget','metadata':{'name':'w','namespace':'n'},"
		"'status':{'conditions':[{'type':'Reconciling','status':'True','reason':'Scaling'},"
		"{'type':'Ready','status':'True'}]}}", HEALTH_IN_PROGRESS, "Scaling", "Widget n/w: reconciling");
	/* Stalled wins over Reconciling whatever the order */
	expect("{'apiVersion':'example.com/v1','kind':'Widget','metadata':{'name':'w'},"
		"'status':{'conditions':[{'type':'Reconciling','status':'True'},{'type':'Stalled','status':'True'}]}}",
		HEALTH_FAILED, "Stalled", "Widget w: stalled");
	/* False ones mean nothing */
	expect("{'apiVersion':'example.com/v1','kind':'Widget','metadata':{'name':'w'},"
		"'status':{'conditions':[{'type':'Reconciling','status':'False'},{'type':'Stalled','status':'False'},"
		"{'type':'Ready','status':'True'}]}}", HEALTH_CURRENT, "Ready", "Widget w: ready");
	/* built-in kinds too: a Stalled Deployment that would be Current */
	expect(deploy("'replicas':3", DEP_3_OF_3 ",'conditions':[{'type':'Stalled','status':'True'},"
		"{'type':'Available','status':'True'},{'type':'Progressing','status':'True',"
		"'reason':'NewReplicaSetAvailable'}]"), HEALTH_FAILED, "Stalled", NULL);
}
END_TEST

START_TEST(test_health__deployment)
{
	expect(deploy("'replicas':3", "'replicas':1,'updatedReplicas':1"), HEALTH_IN_PROGRESS, "TooFewReplicas",
		"Deployment shop/web: 1/3 replicas created");
	expect(deploy("'replicas':3", "'replicas':3,'updatedReplicas':2,'readyReplicas':3,'availableReplicas':3"),
		HEALTH_IN_PROGRESS, "TooFewUpdated", "Deployment shop/web: 2/3 replicas updated");
	expect(deploy("'replicas':3", "'replicas':4,'updatedReplicas':3,'readyReplicas':4,'availableReplicas':4"),
		HEALTH_IN_PROGRESS, "OldReplicasRemain", "Deployment shop/web: 1 old replicas pending termination");
	expect(deploy("'replicas':3", "'replicas':3,'updatedReplicas':3,'readyReplicas':3,'availableReplicas':1,"
		DEP_OK_CONDS), HEALTH_IN_PROGRESS, "TooFewAvailable", "Deployment shop/web: 1/3 replicas available");
	expect(deploy("'replicas':3", "'replicas':3,'updatedReplicas':3,'readyReplicas':2,'availableReplicas':3"),
		HEALTH_IN_PROGRESS, "TooFewReady", "Deployment shop/web: 2/3 replicas ready");
	/* counts right, the controller has not said the new ReplicaSet is available */
	expect(deploy("'replicas':3", DEP_3_OF_3 ",'conditions':[{'type':'Available','status':'True'},"
		"{'type':'Progressing','status':'True','reason':'ReplicaSetUpdated'}]"),
		HEALTH_IN_PROGRESS, "NewReplicaSetNotAvailable", NULL);
	/* Available False, or no Available yet */
	expect(deploy("'replicas':3", DEP_3_OF_3 ",'conditions':[{'type':'Available','status':'False',"
		"'reason':'MinimumReplicasUnavailable','message':'Deployment does not have minimum availability.'},"
		"{'type':'Progressing','status':'True','reason':'NewReplicaSetAvailable'}]"),
		HEALTH_IN_PROGRESS, "NotAvailable",
		"Deployment shop/web: not available: Deployment does not have minimum availability.");
	expect(deploy("'replicas':3", DEP_3_OF_3 ",'conditions':[{'type':'Progressing','status':'True',"
		"'reason':'NewReplicaSetAvailable'}]"), HEALTH_IN_PROGRESS, "NotAvailable",
		"Deployment shop/web: no Available condition yet");
	/* spec.replicas defaults to 1; no status at all is in progress */
	expect(deploy("", ""), HEALTH_IN_PROGRESS, "TooFewReplicas", "Deployment shop/web: 0/1 replicas created");
	expect(deploy("", "'replicas':1,'updatedReplicas':1,'readyReplicas':1,'availableReplicas':1,"
		DEP_OK_CONDS), HEALTH_CURRENT, "Available", NULL);
	/* scaled to zero */
	expect(deploy("'replicas':0", DEP_OK_CONDS), HEALTH_CURRENT, "Available", NULL);
	/* without progressDeadlineSeconds the Progressing condition is not awaited */
	expect("{'apiVersion':'apps/v1','kind':'Deployment','metadata':{'name':'web','namespace':'shop'},"
		"'spec':{'replicas':2},'status':{'replicas':2,'updatedReplicas':2,'readyReplicas':2,"
		"'availableReplicas':2,'conditions':[{'type':'Available','status':'True'}]}}",
		HEALTH_CURRENT, "Available", NULL);
	expect("{'apiVersion':'apps/v1','kind':'Deployment','metadata':{'name':'web','namespace':'shop'},"
		"'spec':{'replicas':2,'progressDeadlineSeconds':2147483647},'status':{'replicas':2,'updatedReplicas':2,"
		"'readyReplicas':2,'availableReplicas':2,'conditions':[{'type':'Available','status':'True'}]}}",
		HEALTH_CURRENT, "Available", NULL);
	/* a member given twice: the first counts (the whole object and its projection agree) */
	expect(deploy("'replicas':2,'progressDeadlineSeconds':2147483647", "'replicas':2,'updatedReplicas':2,"
		"'readyReplicas':2,'availableReplicas':2,'conditions':[{'type':'Available','status':'True'}]"),
		HEALTH_IN_PROGRESS, "NewReplicaSetNotAvailable", NULL);
	/* extensions/v1beta1 follows the same rules */
	expect("{'apiVersion':'extensions/v1beta1','kind':'Deployment','metadata':{'name':'web'},"
		"'spec':{'replicas':2},'status':{'replicas':1}}", HEALTH_IN_PROGRESS, "TooFewReplicas", NULL);
	/* a Deployment of another group is not one */
	expect("{'apiVersion':'example.com/v1','kind':'Deployment','metadata':{'name':'web'},"
		"'spec':{'replicas':2},'status':{'replicas':1}}", HEALTH_CURRENT, "Current", NULL);
}
END_TEST

START_TEST(test_health__deployment_progress_deadline)
{
	expect(deploy("'replicas':3", "'replicas':3,'updatedReplicas':1,'conditions':[{'type':'Progressing',"
		"'status':'False','reason':'ProgressDeadlineExceeded','message':'ReplicaSet \\\"web-7d\\\" has timed out "
		"progressing.'}]"), HEALTH_FAILED, "ProgressDeadlineExceeded",
		"Deployment shop/web: progress deadline exceeded: ReplicaSet \"web-7d\" has timed out progressing.");
}
END_TEST

START_TEST(test_health__statefulset)
{
#define STS(spec, status) "{'apiVersion':'apps/v1','kind':'StatefulSet','metadata':{'name':'db','namespace':'d'," \
	"'generation':2},'spec':{'replicas':3" spec "},'status':{'observedGeneration':2" status "}}"
#define STS_OK ",'replicas':3,'readyReplicas':3,'currentReplicas':3,'updatedReplicas':3," \
	"'currentRevision':'db-1','updateRevision':'db-1'"
	expect(STS("", STS_OK), HEALTH_CURRENT, "RolledOut", "StatefulSet d/db: 3 replicas ready at the update revision");
	expect(STS("", ",'replicas':2"), HEALTH_IN_PROGRESS, "TooFewReplicas", "StatefulSet d/db: 2/3 replicas created");
	expect(STS("", ",'replicas':3,'readyReplicas':1"), HEALTH_IN_PROGRESS, "TooFewReady",
		"StatefulSet d/db: 1/3 replicas ready");
	expect(STS("", ",'replicas':4,'readyReplicas':4"), HEALTH_IN_PROGRESS, "ExtraReplicas", NULL);
	expect(STS("", ",'replicas':3,'readyReplicas':3,'currentReplicas':1,'updatedReplicas':2,"
		"'currentRevision':'db-1','updateRevision':'db-2'"), HEALTH_IN_PROGRESS, "TooFewCurrent",
		"StatefulSet d/db: 1/3 replicas at the current revision");
	expect(STS("", ",'replicas':3,'readyReplicas':3,'currentReplicas':3,'updatedReplicas':3,"
		"'currentRevision':'db-1','updateRevision':'db-2'"), HEALTH_IN_PROGRESS, "RevisionMismatch",
		"StatefulSet d/db: update revision db-2 not rolled out yet (current db-1)");
	/* OnDelete: nothing to wait for, whatever the counts */
	expect(STS(",'updateStrategy':{'type':'OnDelete'}", ",'replicas':0"), HEALTH_CURRENT, "OnDelete", NULL);
	/* a partition: only the pods above it must be updated */
	expect(STS(",'updateStrategy':{'type':'RollingUpdate','rollingUpdate':{'partition':2}}",
		",'replicas':3,'readyReplicas':3,'currentReplicas':2,'updatedReplicas':0,"
		"'currentRevision':'db-1','updateRevision':'db-2'"), HEALTH_IN_PROGRESS, "PartitionRollout",
		"StatefulSet d/db: 0/1 replicas updated above partition 2");
	expect(STS(",'updateStrategy':{'type':'RollingUpdate','rollingUpdate':{'partition':2}}",
		",'replicas':3,'readyReplicas':3,'currentReplicas':2,'updatedReplicas':1,"
		"'currentRevision':'db-1','updateRevision':'db-2'"), HEALTH_CURRENT, "PartitionRolledOut", NULL);
	expect(STS(",'updateStrategy':{'rollingUpdate':{'partition':0}}", ",'replicas':3,'readyReplicas':3,"
		"'updatedReplicas':2"), HEALTH_IN_PROGRESS, "PartitionRollout", NULL);
	expect(STS(",'updateStrategy':{'rollingUpdate':{'partition':-1}}", STS_OK), HEALTH_UNKNOWN, "Malformed",
		"StatefulSet d/db: spec.updateStrategy.rollingUpdate.partition is not a whole number from 0 to 2147483647");
#undef STS
#undef STS_OK
}
END_TEST

START_TEST(test_health__daemonset)
{
#define DS(meta, status) "{'apiVersion':'apps/v1','kind':'DaemonSet','metadata':{'name':'agent'," \
	"'namespace':'kube-system'" meta "},'status':{" status "}}"
	expect(DS(",'generation':1", "'observedGeneration':1,'desiredNumberScheduled':3,'currentNumberScheduled':3,"
		"'updatedNumberScheduled':3,'numberAvailable':3,'numberReady':3"), HEALTH_CURRENT, "RolledOut",
		"DaemonSet kube-system/agent: 3 pods available");
	/* the controller always writes both generations: missing ones mean not yet */
	expect(DS("", "'observedGeneration':1,'desiredNumberScheduled':3,'currentNumberScheduled':3,"
		"'updatedNumberScheduled':3,'numberAvailable':3,'numberReady':3"), HEALTH_IN_PROGRESS,
		"GenerationNotObserved", NULL);
	expect(DS(",'generation':1", "'desiredNumberScheduled':0"), HEALTH_IN_PROGRESS, "GenerationNotObserved", NULL);
	expect(DS(",'generation':1", "'observedGeneration':1"), HEALTH_IN_PROGRESS, "NoDesiredNumber", NULL);
	expect(DS(",'generation':1", "'observedGeneration':1,'desiredNumberScheduled':3,'currentNumberScheduled':2"),
		HEALTH_IN_PROGRESS, "TooFewScheduled", "DaemonSet kube-system/agent: 2/3 nodes scheduled");
	expect(DS(",'generation':1", "'observedGeneration':1,'desiredNumberScheduled':3,'currentNumberScheduled':3,"
		"'updatedNumberScheduled':1"), HEALTH_IN_PROGRESS, "TooFewUpdated",
		"DaemonSet kube-system/agent: 1/3 nodes updated");
	expect(DS(",'generation':1", "'observedGeneration':1,'desiredNumberScheduled':3,'currentNumberScheduled':3,"
		"'updatedNumberScheduled':3,'numberAvailable':2,'numberReady':3"), HEALTH_IN_PROGRESS, "TooFewAvailable",
		"DaemonSet kube-system/agent: 2/3 pods available");
	expect(DS(",'generation':1", "'observedGeneration':1,'desiredNumberScheduled':3,'currentNumberScheduled':3,"
		"'updatedNumberScheduled':3,'numberAvailable':3,'numberReady':2"), HEALTH_IN_PROGRESS, "TooFewReady", NULL);
	/* no nodes to run on: nothing to wait for */
	expect(DS(",'generation':1", "'observedGeneration':1,'desiredNumberScheduled':0"), HEALTH_CURRENT, NULL, NULL);
#undef DS
}
END_TEST

START_TEST(test_health__replicaset)
{
#define RS(status) "{'apiVersion':'apps/v1','kind':'ReplicaSet','metadata':{'name':'web-7d','namespace':'shop'}," \
	"'spec':{'replicas':2},'status':{" status "}}"
	expect(RS("'replicas':2,'fullyLabeledReplicas':2,'availableReplicas':2,'readyReplicas':2"),
		HEALTH_CURRENT, "Available", "ReplicaSet shop/web-7d: 2 replicas available");
	expect(RS("'replicas':2,'fullyLabeledReplicas':1"), HEALTH_IN_PROGRESS, "TooFewLabeled", NULL);
	expect(RS("'replicas':2,'fullyLabeledReplicas':2,'availableReplicas':1,'readyReplicas':2"),
		HEALTH_IN_PROGRESS, "TooFewAvailable", "ReplicaSet shop/web-7d: 1/2 replicas available");
	expect(RS("'replicas':2,'fullyLabeledReplicas':2,'availableReplicas':2,'readyReplicas':1"),
		HEALTH_IN_PROGRESS, "TooFewReady", NULL);
	expect(RS("'replicas':3,'fullyLabeledReplicas':3,'availableReplicas':3,'readyReplicas':3"),
		HEALTH_IN_PROGRESS, "ExtraReplicas", NULL);
	/* a replica failure (quota, admission) is in progress, as kstatus has it */
	expect(RS("'replicas':2,'fullyLabeledReplicas':2,'availableReplicas':2,'readyReplicas':2,"
		"'conditions':[{'type':'ReplicaFailure','status':'True','reason':'FailedCreate',"
		"'message':'exceeded quota: pods'}]"), HEALTH_IN_PROGRESS, "ReplicaFailure",
		"ReplicaSet shop/web-7d: replica failure: exceeded quota: pods");
	expect(RS("'replicas':2,'fullyLabeledReplicas':2,'availableReplicas':2,'readyReplicas':2,"
		"'conditions':[{'type':'ReplicaFailure','status':'False'}]"), HEALTH_CURRENT, NULL, NULL);
#undef RS
}
END_TEST

START_TEST(test_health__job)
{
#define JOB(spec, status) "{'apiVersion':'batch/v1','kind':'Job','metadata':{'name':'migrate','namespace':'shop'}," \
	"'spec':{'completions':3" spec "},'status':{" status "}}"
	expect(JOB("", "'succeeded':3,'conditions':[{'type':'Complete','status':'True'}]"), HEALTH_CURRENT,
		"JobComplete", "Job shop/migrate: complete, 3/3 succeeded");
	expect(JOB("", "'failed':6,'conditions':[{'type':'Failed','status':'True','reason':'BackoffLimitExceeded',"
		"'message':'Job has reached the specified backoff limit'}]"), HEALTH_FAILED, "JobFailed",
		"Job shop/migrate: failed: Job has reached the specified backoff limit (6 failed pods)");
	expect(JOB("", ""), HEALTH_IN_PROGRESS, "JobNotStarted", "Job shop/migrate: not started");
	expect(JOB("", "'startTime':'2026-12-01T10:00:00Z','active':1,'succeeded':1"), HEALTH_IN_PROGRESS,
		"JobRunning", "Job shop/migrate: 1 active, 1/3 succeeded, 0 failed");
	/* a Complete=False is no completion */
	expect(JOB("", "'startTime':'x','conditions':[{'type':'Complete','status':'False'}]"), HEALTH_IN_PROGRESS,
		"JobRunning", NULL);
	/* suspended on purpose: current; suspended condition without spec.suspend: not */
	expect(JOB(",'suspend':true", "'conditions':[{'type':'Suspended','status':'True'}]"), HEALTH_CURRENT,
		"JobSuspended", NULL);
	expect(JOB("", "'conditions':[{'type':'Suspended','status':'True'}]"), HEALTH_IN_PROGRESS, NULL, NULL);
	/* completions default to parallelism */
	expect("{'apiVersion':'batch/v1','kind':'Job','metadata':{'name':'j'},'spec':{'parallelism':2},"
		"'status':{'succeeded':2,'conditions':[{'type':'Complete','status':'True'}]}}", HEALTH_CURRENT, NULL,
		"Job j: complete, 2/2 succeeded");
	/* a CronJob is current once applied */
	expect("{'apiVersion':'batch/v1','kind':'CronJob','metadata':{'name':'c'},'spec':{'schedule':'* * * * *'}}",
		HEALTH_CURRENT, NULL, NULL);
#undef JOB
}
END_TEST

START_TEST(test_health__pvc)
{
	expect("{'apiVersion':'v1','kind':'PersistentVolumeClaim','metadata':{'name':'data','namespace':'d'},"
		"'status':{'phase':'Bound'}}", HEALTH_CURRENT, "Bound", "PersistentVolumeClaim d/data: bound");
	expect("{'apiVersion':'v1','kind':'PersistentVolumeClaim','metadata':{'name':'data','namespace':'d'},"
		"'status':{'phase':'Pending'}}", HEALTH_IN_PROGRESS, "NotBound",
		"PersistentVolumeClaim d/data: not bound (phase Pending)");
	expect("{'apiVersion':'v1','kind':'PersistentVolumeClaim','metadata':{'name':'data','namespace':'d'}}",
		HEALTH_IN_PROGRESS, "NotBound", "PersistentVolumeClaim d/data: not bound (phase unset)");
	expect("{'apiVersion':'v1','kind':'PersistentVolumeClaim','metadata':{'name':'data'},"
		"'status':{'phase':'Lost'}}", HEALTH_IN_PROGRESS, NULL, NULL);
}
END_TEST

START_TEST(test_health__crd)
{
#define CRD(conds) "{'apiVersion':'apiextensions.k8s.io/v1','kind':'CustomResourceDefinition'," \
	"'metadata':{'name':'widgets.example.com'},'status':{'conditions':[" conds "]}}"
	expect(CRD("{'type':'NamesAccepted','status':'True'},{'type':'Established','status':'True'}"),
		HEALTH_CURRENT, "Established", "CustomResourceDefinition widgets.example.com: established");
	expect(CRD("{'type':'NamesAccepted','status':'False','reason':'MultipleNamesNotAllowed',"
		"'message':'plural widgets is already in use'},{'type':'Established','status':'False'}"),
		HEALTH_FAILED, "MultipleNamesNotAllowed",
		"CustomResourceDefinition widgets.example.com: names not accepted: plural widgets is already in use");
	expect(CRD("{'type':'Established','status':'False','reason':'Installing'}"), HEALTH_IN_PROGRESS,
		"Installing", NULL);
	expect(CRD("{'type':'Established','status':'False','reason':'NotAccepted'}"), HEALTH_FAILED,
		"NotAccepted", NULL);
	expect(CRD(""), HEALTH_IN_PROGRESS, "Installing", NULL);
	expect("{'apiVersion':'apiextensions.k8s.io/v1','kind':'CustomResourceDefinition',"
		"'metadata':{'name':'w.example.com'}}", HEALTH_IN_PROGRESS, "Installing", NULL);
#undef CRD
}
END_TEST

START_TEST(test_health__pod)
{
#define POD(status) "{'apiVersion':'v1','kind':'Pod','metadata':{'name':'p','namespace':'n'},'status':{" status "}}"
	expect(POD("'phase':'Succeeded'"), HEALTH_CURRENT, "PodSucceeded", NULL);
	expect(POD("'phase':'Failed'"), HEALTH_FAILED, "PodFailed", "Pod n/p: failed");
	expect(POD("'phase':'Running','conditions':[{'type':'Ready','status':'True'}]"), HEALTH_CURRENT,
		"PodReady", NULL);
	expect(POD("'phase':'Running','conditions':[{'type':'Ready','status':'False'}]"), HEALTH_IN_PROGRESS,
		"PodRunningNotReady", NULL);
	expect(POD("'phase':'Running','containerStatuses':[{'name':'app','state':{'waiting':"
		"{'reason':'CrashLoopBackOff'}}},{'name':'ok','state':{'running':{}}},{'name':'side','state':"
		"{'waiting':{'reason':'CrashLoopBackOff'}}}]"), HEALTH_FAILED, "ContainerCrashLooping",
		"Pod n/p: containers in CrashLoopBackOff: app, side");
	expect(POD("'phase':'Pending'"), HEALTH_IN_PROGRESS, "PodPending", NULL);
	expect(POD("'phase':'Pending','conditions':[{'type':'PodScheduled','status':'False','reason':'Unschedulable',"
		"'message':'0/3 nodes are available'}]"), HEALTH_IN_PROGRESS, "PodUnschedulable",
		"Pod n/p: unschedulable: 0/3 nodes are available");
	expect(POD(""), HEALTH_IN_PROGRESS, "PodNotObserved", NULL);
	expect(POD("'phase':'Sleeping'"), HEALTH_UNKNOWN, "UnknownPhase", "Pod n/p: unknown phase Sleeping");
#undef POD
}
END_TEST

START_TEST(test_health__service)
{
	expect("{'apiVersion':'v1','kind':'Service','metadata':{'name':'web','namespace':'shop'},"
		"'spec':{'type':'LoadBalancer'}}", HEALTH_IN_PROGRESS, "NoIPAssigned", NULL);
	expect("{'apiVersion':'v1','kind':'Service','metadata':{'name':'web','namespace':'shop'},"
		"'spec':{'type':'LoadBalancer','clusterIP':'10.0.0.7'},'status':{'loadBalancer':{}}}",
		HEALTH_CURRENT, NULL, NULL);
	expect("{'apiVersion':'v1','kind':'Service','metadata':{'name':'web','namespace':'shop'},"
		"'spec':{'clusterIP':'None'}}", HEALTH_CURRENT, NULL, NULL);
	expect("{'apiVersion':'v1','kind':'Service','metadata':{'name':'web','namespace':'shop'}}",
		HEALTH_CURRENT, NULL, NULL);
}
END_TEST

START_TEST(test_health__standard_conditions)
{
#define W(conds) "{'apiVersion':'example.com/v1','kind':'Widget','metadata':{'name':'w','namespace':'n'}," \
	"'status':{'conditions':[" conds "]}}"
	expect(W("{'type':'Ready','status':'True'}"), HEALTH_CURRENT, "Ready", "Widget n/w: ready");
	expect(W("{'type':'Ready','status':'False','reason':'Waiting','message':'db not up'}"), HEALTH_IN_PROGRESS,
		"Waiting", "Widget n/w: not ready: db not up");
	expect(W("{'type':'Ready','status':'Unknown'}"), HEALTH_IN_PROGRESS, "NotReady",
		"Widget n/w: readiness unknown");
	/* condition statuses are case-sensitive, as in Kubernetes */
	expect(W("{'type':'Ready','status':'true'}"), HEALTH_CURRENT, "Current", NULL);
	/* the first Ready counts */
	expect(W("{'type':'Ready','status':'False'},{'type':'Ready','status':'True'}"), HEALTH_IN_PROGRESS, NULL, NULL);
	expect(W("{'type':'Synced','status':'False'}"), HEALTH_CURRENT, "Current", NULL);
	expect(W(""), HEALTH_CURRENT, "Current", "Widget n/w: current");
#undef W
}
END_TEST

START_TEST(test_health__no_status_is_current)
{
	expect("{'apiVersion':'v1','kind':'ConfigMap','metadata':{'name':'c','namespace':'a'},'data':{'k':'v'}}",
		HEALTH_CURRENT, "Current", "ConfigMap a/c: current");
	expect("{'apiVersion':'v1','kind':'Secret','metadata':{'name':'s','namespace':'a'}}", HEALTH_CURRENT, NULL, NULL);
	expect("{'apiVersion':'rbac.authorization.k8s.io/v1','kind':'ClusterRole','metadata':{'name':'r'}}",
		HEALTH_CURRENT, "Current", "ClusterRole r: current");
	expect("{'apiVersion':'v1','kind':'Namespace','metadata':{'name':'shop'},'status':{'phase':'Active'}}",
		HEALTH_CURRENT, NULL, NULL);
	expect("{'apiVersion':'policy/v1','kind':'PodDisruptionBudget','metadata':{'name':'p','namespace':'a',"
		"'generation':1},'status':{'observedGeneration':1}}", HEALTH_CURRENT, NULL, NULL);
	/* null counts as absent */
	expect("{'apiVersion':'v1','kind':'ConfigMap','metadata':{'name':'c'},'status':null}", HEALTH_CURRENT, NULL, NULL);
	expect("{}", HEALTH_CURRENT, "Current", "object (unnamed): current");
}
END_TEST

START_TEST(test_health__malformed)
{
	/* never a crash; the field in the message */
	expect("{'apiVersion':'v1','kind':'ConfigMap','metadata':{'name':'c'},'status':'broken'}", HEALTH_UNKNOWN,
		"Malformed", "ConfigMap c: status is not an object");
	expect("{'apiVersion':'v1','kind':'ConfigMap','metadata':'x'}", HEALTH_UNKNOWN, "Malformed",
		"ConfigMap (unnamed): metadata is not an object");
	expect("{'apiVersion':'v1','kind':'ConfigMap','metadata':{'name':'c','generation':'2'},"
		"'status':{'observedGeneration':1}}", HEALTH_UNKNOWN, "Malformed", "ConfigMap c: metadata.generation is not a number");
	expect("{'apiVersion':'v1','kind':'ConfigMap','metadata':{'name':'c','generation':2.5}}", HEALTH_UNKNOWN,
		"Malformed", NULL);
	expect("{'apiVersion':'v1','kind':'ConfigMap','metadata':{'name':'c','deletionTimestamp':7}}", HEALTH_UNKNOWN,
		"Malformed", "ConfigMap c: metadata.deletionTimestamp is not a string");
	expect("{'apiVersion':1,'kind':'ConfigMap','metadata':{'name':'c'}}", HEALTH_UNKNOWN, "Malformed",
		"ConfigMap c: apiVersion is not a string");
	expect("{'apiVersion':'v1','kind':['ConfigMap'],'metadata':{'name':'c'}}", HEALTH_UNKNOWN, "Malformed",
		"object c: kind is not a string");
	/* replica counts */
	expect(deploy("'replicas':-1", DEP_3_OF_3), HEALTH_UNKNOWN, "Malformed",
		"Deployment shop/web: spec.replicas is not a whole number from 0 to 2147483647");
	expect(deploy("'replicas':'3'", DEP_3_OF_3), HEALTH_UNKNOWN, "Malformed",
		"Deployment shop/web: spec.replicas is not a number");
	expect(deploy("'replicas':3", "'replicas':3,'updatedReplicas':1.5"), HEALTH_UNKNOWN, "Malformed", NULL);
	expect(deploy("'replicas':3", "'replicas':1e300"), HEALTH_UNKNOWN, "Malformed", NULL);
	expect(deploy("'replicas':3", "'replicas':true"), HEALTH_UNKNOWN, "Malformed", NULL);
	expect(deploy("'replicas':3", "'replicas':{'a':1}"), HEALTH_UNKNOWN, "Malformed", NULL);
	expect(deploy("'replicas':2147483648", DEP_3_OF_3), HEALTH_UNKNOWN, "Malformed", NULL);
	expect("{'apiVersion':'batch/v1','kind':'Job','metadata':{'name':'j'},'spec':{'suspend':'yes'}}",
		HEALTH_UNKNOWN, "Malformed", "Job j: spec.suspend is not a boolean");
	expect("{'apiVersion':'apps/v1','kind':'StatefulSet','metadata':{'name':'s'},'spec':{'updateStrategy':'OnDelete'}}",
		HEALTH_UNKNOWN, "Malformed", "StatefulSet s: spec.updateStrategy is not an object");
	/* conditions */
	expect("{'apiVersion':'example.com/v1','kind':'Widget','metadata':{'name':'w'},'status':{'conditions':{}}}",
		HEALTH_UNKNOWN, "Malformed", "Widget w: status.conditions is not an array");
	expect("{'apiVersion':'example.com/v1','kind':'Widget','metadata':{'name':'w'},'status':{'conditions':"
		"[{'type':'Ready','status':'True'},'Ready']}}", HEALTH_UNKNOWN, "Malformed",
		"Widget w: status.conditions[1] is not an object");
	expect("{'apiVersion':'example.com/v1','kind':'Widget','metadata':{'name':'w'},'status':{'conditions':"
		"[{'type':'Ready','status':true}]}}", HEALTH_UNKNOWN, "Malformed",
		"Widget w: status.conditions[0].status is not a string");
	expect("{'apiVersion':'example.com/v1','kind':'Widget','metadata':{'name':'w'},'status':{'conditions':"
		"[{'type':{'x':1},'status':'True'}]}}", HEALTH_UNKNOWN, "Malformed", NULL);
	/* a condition without a type is ignored */
	expect("{'apiVersion':'example.com/v1','kind':'Widget','metadata':{'name':'w'},'status':{'conditions':"
		"[{'status':'False'},{'type':null,'status':'False'}]}}", HEALTH_CURRENT, NULL, NULL);
	/* container statuses */
	expect("{'apiVersion':'v1','kind':'Pod','metadata':{'name':'p'},'status':{'phase':'Running',"
		"'containerStatuses':'x'}}", HEALTH_UNKNOWN, "Malformed", "Pod p: status.containerStatuses is not an array");
	expect("{'apiVersion':'v1','kind':'Pod','metadata':{'name':'p'},'status':{'phase':'Running',"
		"'containerStatuses':[{'name':7,'state':{'waiting':{'reason':'CrashLoopBackOff'}}},{'name':'a','state':'x'},"
		"{'name':'b','state':{'waiting':'y'}}]}}", HEALTH_IN_PROGRESS, "PodRunningNotReady", NULL);
	/* not an object at all */
	cJSON *arr = test_json("[1,2]");
	health_result r;
	ck_assert_int_eq(health_of(&r, arr), 0);
	ck_assert_int_eq(r.state, HEALTH_UNKNOWN);
	ck_assert_str_eq(r.message, "object: not a JSON object");
	cJSON *p = NULL;
	ck_assert_int_eq(health_project(&p, arr), PLUMB_EINVALID);
	cJSON_Delete(arr);
}
END_TEST

START_TEST(test_health__huge_arrays)
{
	/* HEALTH_MAX_CONDITIONS conditions are read; one more is Unknown, and
	 * the projection keeps no more than one past the cap */
	for (int n = HEALTH_MAX_CONDITIONS; n <= 10000; n += 10000 - HEALTH_MAX_CONDITIONS) {
		cJSON *j = test_json("{'apiVersion':'example.com/v1','kind':'Widget','metadata':{'name':'w'},'status':{}}");
		cJSON *conds = cJSON_AddArrayToObject(cJSON_GetObjectItem(j, "status"), "conditions");
		for (int i = 0; i < n; i++) {
			cJSON *c = cJSON_CreateObject();
			char t[32];
			snprintf(t, sizeof(t), "T%d", i);
			cJSON_AddStringToObject(c, "type", i == n - 1 ? "Ready" : t);
			cJSON_AddStringToObject(c, "status", "False");
			cJSON_AddItemToArray(conds, c);
		}
		health_result r = of_obj(j);
		if (n == HEALTH_MAX_CONDITIONS) {
			ck_assert_int_eq(r.state, HEALTH_IN_PROGRESS);
		} else {
			ck_assert_int_eq(r.state, HEALTH_UNKNOWN);
			ck_assert_str_eq(r.message, "Widget w: more than 64 conditions");
			cJSON *p = NULL;
			ck_assert_int_eq(health_project(&p, j), 0);
			ck_assert_int_eq(cJSON_GetArraySize(plumb_json_get(p, "status.conditions")), HEALTH_MAX_CONDITIONS + 1);
			cJSON_Delete(p);
		}
		cJSON_Delete(j);
	}
	cJSON *pod = test_json("{'apiVersion':'v1','kind':'Pod','metadata':{'name':'p'},'status':{'phase':'Running',"
		"'containerStatuses':[]}}");
	cJSON *cs = plumb_json_get(pod, "status.containerStatuses") ? (cJSON *)plumb_json_get(pod, "status.containerStatuses") : NULL;
	for (int i = 0; i < 1000; i++) {
		cJSON *c = cJSON_CreateObject();
		cJSON_AddStringToObject(c, "name", "c");
		cJSON_AddItemToArray(cs, c);
	}
	health_result r = of_obj(pod);
	ck_assert_int_eq(r.state, HEALTH_UNKNOWN);
	ck_assert_str_eq(r.message, "Pod p: more than 64 container statuses");
	cJSON_Delete(pod);
}
END_TEST

START_TEST(test_health__messages_cut_safely)
{
	/* a tenant's long condition message: cut on a character boundary, "..." at the end */
	char msg[1000], buf[3000];
	size_t o = 0;
	while (o + 3 < sizeof(msg) - 1) {
		memcpy(msg + o, "\xc3\xa9", 2); /* é */
		o += 2;
		msg[o++] = 'x';
	}
	msg[o] = '\0';
	snprintf(buf, sizeof(buf), "{\"apiVersion\":\"example.com/v1\",\"kind\":\"Widget\",\"metadata\":{\"name\":\"w\"},"
		"\"status\":{\"conditions\":[{\"type\":\"Ready\",\"status\":\"False\",\"reason\":\"A b\\n<c>%s\","
		"\"message\":\"%s\"}]}}", msg, msg);
	cJSON *j = cJSON_Parse(buf);
	ck_assert_ptr_nonnull(j);
	health_result r = of_obj(j);
	cJSON_Delete(j);
	size_t len = strlen(r.message);
	ck_assert_uint_le(len, sizeof(r.message) - 1);
	ck_assert_uint_ge(len, sizeof(r.message) - 4);
	ck_assert_str_eq(r.message + len - 3, "...");
	ck_assert_msg(((unsigned char)r.message[len - 4] & 0xc0) != 0xc0, "cut after a lead byte: %s", r.message);
	ck_assert_uint_eq(strlen(r.reason), sizeof(r.reason) - 1);
	ck_assert_msg(!strncmp(r.reason, "Abc", 3), "reason %s", r.reason);

	/* control characters and bytes that are not UTF-8 */
	j = cJSON_Parse("{\"apiVersion\":\"example.com/v1\",\"kind\":\"Widget\",\"metadata\":{\"name\":\"w\"},"
		"\"status\":{\"conditions\":[{\"type\":\"Ready\",\"status\":\"False\",\"message\":\"a\\nb\\u0007c\xff\xc3(d\"}]}}");
	ck_assert_ptr_nonnull(j);
	r = of_obj(j);
	cJSON_Delete(j);
	ck_assert_str_eq(r.message, "Widget w: not ready: a b c?" "?(d");
	/* a reason of nothing but odd characters still gives one */
	expect("{'apiVersion':'example.com/v1','kind':'Widget','metadata':{'name':'w'},'status':{'conditions':"
		"[{'type':'Ready','status':'False','reason':'   '}]}}", HEALTH_IN_PROGRESS, NULL, NULL);

	/* a long name does not push the reason out of the message */
	char name[300];
	memset(name, 'n', 253);
	name[253] = '\0';
	snprintf(buf, sizeof(buf), "{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{\"name\":\"%s\","
		"\"namespace\":\"%.63s\"},\"spec\":{\"replicas\":3},\"status\":{\"replicas\":1}}", name, name);
	j = cJSON_Parse(buf);
	r = of_obj(j);
	cJSON_Delete(j);
	ck_assert_msg(strstr(r.message, "...: 1/3 replicas created") != NULL, "%s", r.message);
}
END_TEST

static int has_path(const char *const *paths, const char *p)
{
	for (size_t i = 0; paths[i]; i++)
		if (!strcmp(paths[i], p))
			return 1;
	return 0;
}

START_TEST(test_health__paths)
{
	const char *const *d = health_status_paths("apps/v1", "Deployment");
	ck_assert(has_path(d, "status.availableReplicas"));
	ck_assert(has_path(d, "spec.replicas"));
	ck_assert(has_path(d, "status.conditions[].reason"));
	ck_assert(has_path(d, "metadata.generation"));
	ck_assert(!has_path(d, "status.phase"));
	const char *const *g = health_status_paths("v1", "ConfigMap");
	ck_assert(has_path(g, "status.conditions[].type"));
	ck_assert(!has_path(g, "spec.replicas"));
	ck_assert(has_path(health_status_paths("v1", "Pod"), "status.containerStatuses[].state.waiting.reason"));
	ck_assert(has_path(health_status_paths("batch/v1", "Job"), "status.startTime"));
	ck_assert(has_path(health_status_paths(NULL, NULL), "metadata.deletionTimestamp"));
	ck_assert(!has_path(health_status_paths("example.com/v1", "Deployment"), "spec.replicas"));

	/* the projection drops everything else */
	cJSON *j = test_json("{'apiVersion':'apps/v1','kind':'Deployment','metadata':{'name':'web','namespace':'shop',"
		"'labels':{'a':'b'},'annotations':{'big':'xxxxxxxx'},'managedFields':[{'manager':'plumb'}],'generation':2},"
		"'spec':{'replicas':3,'template':{'spec':{'containers':[{'name':'app','image':'nginx'}]}}},"
		"'status':{'observedGeneration':2,'replicas':3,'conditions':[{'type':'Available','status':'True',"
		"'lastUpdateTime':'2026-12-01T10:00:00Z','lastTransitionTime':'2026-12-01T10:00:00Z'}]}}");
	cJSON *p = NULL;
	ck_assert_int_eq(health_project(&p, j), 0);
	char *s = cJSON_PrintUnformatted(p);
	ck_assert_str_eq(s, "{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{\"name\":\"web\","
		"\"namespace\":\"shop\",\"generation\":2},\"status\":{\"observedGeneration\":2,\"conditions\":"
		"[{\"type\":\"Available\",\"status\":\"True\"}],\"replicas\":3},\"spec\":{\"replicas\":3}}");
	free(s);
	cJSON_Delete(p);
	cJSON_Delete(j);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("health");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_health__state_names);
	tcase_add_test(tc, test_health__terminating);
	tcase_add_test(tc, test_health__observed_generation);
	tcase_add_test(tc, test_health__stalled_and_reconciling);
	tcase_add_test(tc, test_health__deployment);
	tcase_add_test(tc, test_health__deployment_progress_deadline);
	tcase_add_test(tc, test_health__statefulset);
	tcase_add_test(tc, test_health__daemonset);
	tcase_add_test(tc, test_health__replicaset);
	tcase_add_test(tc, test_health__job);
	tcase_add_test(tc, test_health__pvc);
	tcase_add_test(tc, test_health__crd);
	tcase_add_test(tc, test_health__pod);
	tcase_add_test(tc, test_health__service);
	tcase_add_test(tc, test_health__standard_conditions);
	tcase_add_test(tc, test_health__no_status_is_current);
	tcase_add_test(tc, test_health__malformed);
	tcase_add_test(tc, test_health__huge_arrays);
	tcase_add_test(tc, test_health__messages_cut_safely);
	tcase_add_test(tc, test_health__paths);
	suite_add_tcase(s, tc);
	return test_run(s);
}
