// What components import: one object gathering the Airflow libraries, each a concern of its own
// (read the one whose name says what you look for):
//   airflow-environment.libsonnet  parameters, names, paths, labels, executors
//   config.libsonnet               airflow.cfg
//   secrets.libsonnet              Kapitan refs / ExternalSecrets and the secrets volume
//   database.libsonnet             metadata database, PgBouncer and Celery broker URLs
//   dags.libsonnet                 DAG delivery: git-sync, the Git DAG bundle, a DAG claim
//   observability.libsonnet        metrics and remote logging
//   auth.libsonnet                 sign-in: the auth manager, webserver_config.py, its secrets
//   pod.libsonnet                  Airflow containers and pods, the component builder
(import 'airflow-environment.libsonnet')
+ (import 'config.libsonnet')
+ (import 'secrets.libsonnet')
+ (import 'database.libsonnet')
+ (import 'dags.libsonnet')
+ (import 'observability.libsonnet')
+ (import 'auth.libsonnet')
+ (import 'pod.libsonnet')
