/*
 * pkg/health — is an object plumb applied healthy in its cluster? Computed
 * from the live object alone (its JSON as the API server returns it), with
 * the rules of kstatus (sigs.k8s.io/cli-utils/pkg/kstatus/status), the
 * library Flux and kpt wait with, so a user who knows one knows the other.
 *
 *   health_of()            an object -> Current, InProgress, Failed,
 *                          Terminating or Unknown, a reason and a message
 *   health_state_name()    "Current", "InProgress", ...
 *   health_status_paths()  every field health_of() reads for a kind
 *   health_project()       an object reduced to those fields (what a watch
 *                          cache keeps), with the same health as the whole
 *
 * Pure: no I/O, no clock, no globals written, no locks; every function may
 * be called from any thread at once. Work is bounded by the input's size and
 * by HEALTH_MAX_CONDITIONS / HEALTH_MAX_CONTAINERS.
 *
 * The rules, in the order health_of() applies them (each first match wins):
 *
 * Every kind (kstatus's generic checks):
 *   1. metadata.deletionTimestamp set                      -> Terminating
 *   2. metadata.generation and status.observedGeneration both present and
 *      different                                           -> InProgress
 *      ("Deployment shop/web: observed generation 3 < 4")
 *   3. a condition Stalled=True                            -> Failed
 *      a condition Reconciling=True                        -> InProgress
 *      (kstatus takes whichever comes first in the array; we let Stalled
 *      win over Reconciling so the answer does not depend on the order.)
 *
 * Then by API group and kind, any version (a Deployment of another group is
 * an "other kind"):
 *   Deployment (apps, extensions): a Progressing condition with reason
 *     ProgressDeadlineExceeded -> Failed. Otherwise, with spec.replicas
 *     (default 1) as the target, InProgress while status.replicas < spec
 *     (pods not created), updatedReplicas < spec (not rolled out),
 *     status.replicas > spec (old pods still there), availableReplicas <
 *     updatedReplicas ("1/3 replicas available"), readyReplicas < spec;
 *     then InProgress until Progressing=True with reason
 *     NewReplicaSetAvailable (unless spec.progressDeadlineSeconds is unset
 *     or 2147483647, where the controller never sets it), and until
 *     Available=True (kstatus waits for True, so a missing Available
 *     condition is InProgress as well as a False one). Else Current.
 *   StatefulSet (apps): spec.updateStrategy.type OnDelete -> Current (the
 *     user rolls pods by hand; nothing to wait for). InProgress while
 *     status.replicas < spec, readyReplicas < spec, status.replicas > spec;
 *     with spec.updateStrategy.rollingUpdate.partition set, InProgress
 *     while updatedReplicas < spec - partition, else Current; without it,
 *     InProgress while currentReplicas < spec or currentRevision !=
 *     updateRevision. Else Current.
 *   DaemonSet (apps, extensions): InProgress until metadata.generation and
 *     status.observedGeneration are both present (its controller always
 *     writes them) and status.desiredNumberScheduled is present; then
 *     while currentNumberScheduled, updatedNumberScheduled, numberAvailable
 *     or numberReady is below desiredNumberScheduled. Else Current.
 *   ReplicaSet (apps, extensions): ReplicaFailure=True -> InProgress (as
 *     kstatus: it is usually a quota or admission refusal that clears by
 *     itself; the caller's health timeout turns it into a failure). Then
 *     InProgress while fullyLabeledReplicas, availableReplicas or
 *     readyReplicas < spec.replicas (default 1), or status.replicas > spec.
 *   Job (batch): Failed=True -> Failed; Complete=True -> Current;
 *     Suspended=True with spec.suspend true -> Current; else InProgress
 *     ("not started" / "1 active, 0/3 succeeded"). Here we differ from
 *     kstatus on purpose: kstatus calls a Job Current once it has started;
 *     plumb waits for it to complete, as issue 15 asks ("Jobs (complete /
 *     failed)"): a migration Job gating a rollout must have finished.
 *   PersistentVolumeClaim: status.phase Bound -> Current, else InProgress.
 *   CustomResourceDefinition (apiextensions.k8s.io): NamesAccepted=False ->
 *     Failed; Established=True -> Current; Established=False with a reason
 *     other than Installing -> Failed; else InProgress.
 *   Pod: phase Succeeded -> Current; Failed -> Failed (kstatus says Current,
 *     "completed"; plumb calls a Pod that ended in failure unhealthy, as
 *     the brief for this module asks); Running with Ready=True -> Current;
 *     Running with a container waiting in CrashLoopBackOff -> Failed;
 *     Running otherwise, Pending, or no phase yet -> InProgress; a phase
 *     Kubernetes does not define -> Unknown. kstatus turns an Unschedulable
 *     Pod into Failed 15 s after its creation; that needs a clock, so here
 *     it stays InProgress ("unschedulable: ...") and the caller's timeout
 *     decides.
 *   Service: type LoadBalancer with no spec.clusterIP -> InProgress, else
 *     Current. This is what kstatus checks; it does not wait for
 *     status.loadBalancer.ingress, and neither do we: clusters without a
 *     load-balancer controller (kind, bare metal, the test bed) never fill
 *     it, and a gate on it would hold such a rollout forever.
 *   ConfigMap, Secret, CronJob (batch), PodDisruptionBudget (policy):
 *     Current once the generic checks pass (kstatus: always ready).
 *   Any other kind: Ready=True -> Current; Ready=False or Ready=Unknown ->
 *     InProgress (as kstatus: Ready=False is what a controller says while it
 *     works, Stalled is its word for giving up, so Ready=False alone is not
 *     a failure); no Ready condition, no conditions, no status -> Current
 *     (objects with no notion of health are current once applied).
 *
 * Malformed input (it comes from tenants' clusters; API validation does not
 * cover custom resources, and a tenant may write any status): never a
 * crash, never unbounded work. Where kstatus would fail to decode the
 * object (metadata, spec or status not an object, conditions not an array
 * of objects, a condition's type/status/reason/message not a string,
 * generation not an integer) health_of() says Unknown with the field in
 * the message. Where kstatus silently takes a default (a replica count
 * that is a string, negative, fractional or above 2^31-1) we say Unknown
 * too: a wrong count is not evidence of health. More than
 * HEALTH_MAX_CONDITIONS conditions or HEALTH_MAX_CONTAINERS container
 * statuses -> Unknown. JSON null counts as absent. Condition messages are
 * copied with control characters replaced by spaces and cut on a UTF-8
 * character boundary ("..." marks the cut); reasons keep only
 * [A-Za-z0-9_.:-] (none left: the state's name stands in).
 */
#ifndef PLUMB_HEALTH_H
#define PLUMB_HEALTH_H

#include <cjson/cJSON.h>

#define HEALTH_MAX_CONDITIONS 64
#define HEALTH_MAX_CONTAINERS 64

typedef enum {
	HEALTH_CURRENT,      /* reconciled: what was applied is in effect */
	HEALTH_IN_PROGRESS,  /* on its way (or waiting for something) */
	HEALTH_FAILED,       /* its controller gave up, or it ended in failure */
	HEALTH_TERMINATING,  /* being deleted */
	HEALTH_UNKNOWN       /* the object cannot be read (see above) */
} health_state;

typedef struct {
	health_state state;
	char reason[64];    /* CamelCase, e.g. "ProgressDeadlineExceeded" */
	/* "<Kind> <namespace>/<name>: <why>", or "<Kind> <name>: <why>" for a
	 * cluster-scoped object; always NUL-terminated, cut safely */
	char message[256];
} health_result;

/* The health of obj (a whole live object, or health_project()'s reduction
 * of it). Writes *out and returns 0 for every obj, malformed or NULL ones
 * included (those are HEALTH_UNKNOWN); PLUMB_EINVALID only when out is
 * NULL. */
int health_of(health_result *out, const cJSON *obj);

/* "Current", "InProgress", "Failed", "Terminating", "Unknown" (kstatus's
 * names); "Unknown" for a value outside the enum. Static storage. */
const char *health_state_name(health_state state);

/* Every field health_of() reads from an object of this apiVersion and kind
 * (NULLs allowed: the generic set): a NULL-terminated array of dot paths in
 * plumb_json_get() form, where a step ending in "[]" stands for each element
 * of that array ("status.conditions[].type"). Static storage. */
const char *const *health_status_paths(const char *api_version, const char *kind);

/* A new object holding only obj's fields named by health_status_paths() for
 * its apiVersion and kind, with health_of(projection) == health_of(obj)
 * (state, reason and message), malformed objects included: a value of the
 * wrong type where an object, an array or a scalar was expected is kept as
 * an empty value of its own type, and arrays are kept up to one element
 * past their cap. The caller frees *out with cJSON_Delete(). Returns 0,
 * PLUMB_EINVALID when obj is not an object, PLUMB_ENOMEM; *out is written
 * only on success. */
int health_project(cJSON **out, const cJSON *obj);

#endif
