// Small Kubernetes constructors and mixins in the k8s-libsonnet style:
// `x.new(...)` builds the minimal object, `x.withY(...)` returns a patch to `+` onto it.
// Nothing here knows about Airflow.
{
  local metaMixin = {
    withLabels(labels):: { metadata+: { labels+: labels } },
    withAnnotations(annotations):: if annotations == {} then {} else { metadata+: { annotations+: annotations } },
  },

  object:: metaMixin {
    new(apiVersion, kind, name, namespace=null):: {
      apiVersion: apiVersion,
      kind: kind,
      metadata: { name: name } + (if namespace == null then {} else { namespace: namespace }),
    },
  },

  namespace:: metaMixin {
    new(name):: $.object.new('v1', 'Namespace', name),
  },

  configMap:: metaMixin {
    new(name, namespace, data):: $.object.new('v1', 'ConfigMap', name, namespace) { data: data },
  },

  secret:: metaMixin {
    // stringData holds Kapitan ref tags, never values: they are revealed at apply time.
    new(name, namespace, stringData):: $.object.new('v1', 'Secret', name, namespace) {
      type: 'Opaque',
      stringData: stringData,
    },
  },

  serviceAccount:: metaMixin {
    new(name, namespace, automountToken=false):: $.object.new('v1', 'ServiceAccount', name, namespace) {
      automountServiceAccountToken: automountToken,
    },
  },

  service:: metaMixin {
    new(name, namespace, selector, ports):: $.object.new('v1', 'Service', name, namespace) {
      spec: { type: 'ClusterIP', selector: selector, ports: ports },
    },
    withType(type):: { spec+: { type: type } },
    port(name, port, targetPort=name):: { name: name, port: port, targetPort: targetPort, protocol: 'TCP' },
  },

  container:: {
    new(name, image, pullPolicy='IfNotPresent'):: { name: name, image: image, imagePullPolicy: pullPolicy },
    withArgs(args):: { args: args },
    withCommand(command):: { command: command },
    withEnv(env):: { env+: env },
    withEnvFrom(envFrom):: { envFrom+: envFrom },
    withPorts(ports):: { ports+: ports },
    withVolumeMounts(mounts):: { volumeMounts+: mounts },
    withResources(resources):: { resources: resources },
    withProbes(readiness=null, liveness=null, startup=null)::
      (if readiness == null then {} else { readinessProbe: readiness })
      + (if liveness == null then {} else { livenessProbe: liveness })
      + (if startup == null then {} else { startupProbe: startup }),
    // Hardened defaults every container gets; readOnly is off only where the program writes to its root.
    withRestrictedSecurityContext(runAsUser, runAsGroup, readOnlyRootFilesystem=true):: {
      securityContext: {
        runAsNonRoot: true,
        runAsUser: runAsUser,
        runAsGroup: runAsGroup,
        allowPrivilegeEscalation: false,
        privileged: false,
        readOnlyRootFilesystem: readOnlyRootFilesystem,
        capabilities: { drop: ['ALL'] },
        seccompProfile: { type: 'RuntimeDefault' },
      },
    },
    containerPort(name, port):: { name: name, containerPort: port, protocol: 'TCP' },
    envValue(name, value):: { name: name, value: std.toString(value) },
    envSecret(name, secretName, key):: { name: name, valueFrom: { secretKeyRef: { name: secretName, key: key } } },
    mount(name, mountPath, readOnly=false, subPath=null)::
      { name: name, mountPath: mountPath } + (if readOnly then { readOnly: true } else {})
      + (if subPath == null || subPath == '' then {} else { subPath: subPath }),
  },

  probe:: {
    http(path, port, periodSeconds=15, timeoutSeconds=5, failureThreshold=5, initialDelaySeconds=0):: {
      httpGet: { path: path, port: port, scheme: 'HTTP' },
      periodSeconds: periodSeconds,
      timeoutSeconds: timeoutSeconds,
      failureThreshold: failureThreshold,
    } + (if initialDelaySeconds > 0 then { initialDelaySeconds: initialDelaySeconds } else {}),
    tcp(port, periodSeconds=15, timeoutSeconds=5, failureThreshold=5):: {
      tcpSocket: { port: port },
      periodSeconds: periodSeconds,
      timeoutSeconds: timeoutSeconds,
      failureThreshold: failureThreshold,
    },
    exec(command, periodSeconds=60, timeoutSeconds=30, failureThreshold=5, initialDelaySeconds=0):: {
      exec: { command: command },
      periodSeconds: periodSeconds,
      timeoutSeconds: timeoutSeconds,
      failureThreshold: failureThreshold,
    } + (if initialDelaySeconds > 0 then { initialDelaySeconds: initialDelaySeconds } else {}),
  },

  podSpec:: {
    new(containers, serviceAccountName):: {
      serviceAccountName: serviceAccountName,
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      containers: containers,
    },
    withInitContainers(initContainers):: if initContainers == [] then {} else { initContainers+: initContainers },
    withVolumes(volumes):: { volumes+: volumes },
    withSecurityContext(runAsUser, runAsGroup, fsGroup):: {
      securityContext: {
        runAsNonRoot: true,
        runAsUser: runAsUser,
        runAsGroup: runAsGroup,
        fsGroup: fsGroup,
        seccompProfile: { type: 'RuntimeDefault' },
      },
    },
    withServiceAccountToken(enabled):: { automountServiceAccountToken: enabled },
    withPlacement(nodeSelector={}, tolerations=[], affinity={})::
      (if nodeSelector == {} then {} else { nodeSelector: nodeSelector })
      + (if tolerations == [] then {} else { tolerations: tolerations })
      + (if affinity == {} then {} else { affinity: affinity }),
    withImagePullSecrets(names):: if names == [] then {} else { imagePullSecrets: [{ name: n } for n in names] },
    withTerminationGracePeriod(seconds):: { terminationGracePeriodSeconds: seconds },
    // Spread over each node label key, preferred rather than required (a zone outage must not
    // leave replicas unschedulable).
    withTopologySpread(keys, selectorLabels, maxSkew=1)::
      if keys == [] then {} else {
        topologySpreadConstraints: [
          { maxSkew: maxSkew, topologyKey: key, whenUnsatisfiable: 'ScheduleAnyway', labelSelector: { matchLabels: selectorLabels } }
          for key in keys
        ],
      },
    withPriorityClass(name):: if name == '' then {} else { priorityClassName: name },
  },

  volume:: {
    emptyDir(name, medium=null, sizeLimit=null):: {
      name: name,
      emptyDir: (if medium == null then {} else { medium: medium })
                + (if sizeLimit == null then {} else { sizeLimit: sizeLimit }),
    },
    configMap(name, configMapName, items=null):: {
      name: name,
      configMap: { name: configMapName } + (if items == null then {} else { items: items }),
    },
    // `items` maps keys to file names ({key: path}); null mounts every key under its own name.
    secret(name, secretName, defaultMode=288, items=null):: {
      name: name,
      secret: { secretName: secretName, defaultMode: defaultMode }
              + (if items == null then {} else { items: [{ key: key, path: items[key] } for key in std.objectFields(items)] }),
    },
    pvc(name, claimName, readOnly=false):: {
      name: name,
      persistentVolumeClaim: { claimName: claimName } + (if readOnly then { readOnly: true } else {}),
    },
  },

  local workload(apiVersion, kind) = metaMixin {
    new(name, namespace, replicas, selectorLabels, podSpec):: $.object.new(apiVersion, kind, name, namespace) {
      spec: {
        replicas: replicas,
        revisionHistoryLimit: 5,
        selector: { matchLabels: selectorLabels },
        template: { metadata: { labels: selectorLabels }, spec: podSpec },
      },
    },
    withPodLabels(labels):: { spec+: { template+: { metadata+: { labels+: labels } } } },
    withPodAnnotations(annotations):: { spec+: { template+: { metadata+: { annotations+: annotations } } } },
    // An autoscaler owns the replica count.
    withoutReplicas():: { spec+: { replicas:: super.replicas } },
  },

  deployment:: workload('apps/v1', 'Deployment') {
    withRollingUpdate(maxUnavailable, maxSurge):: {
      spec+: { strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: maxUnavailable, maxSurge: maxSurge } } },
    },
    withRecreate():: { spec+: { strategy: { type: 'Recreate' } } },
  },

  statefulSet:: workload('apps/v1', 'StatefulSet') {
    withServiceName(serviceName):: { spec+: { serviceName: serviceName } },
    // Pods start and stop together, not one by one (workers share no state).
    withParallelPodManagement():: { spec+: { podManagementPolicy: 'Parallel' } },
    // The claims of volumeClaimTemplates stay when the set is deleted or scaled in (the
    // Kubernetes default, spelled out: the data must never go with the workload).
    withRetainedClaims():: { spec+: { persistentVolumeClaimRetentionPolicy: { whenDeleted: 'Retain', whenScaled: 'Retain' } } },
    // apiVersion and kind are spelled out: without them Argo CD shows the set OutOfSync forever.
    withVolumeClaimTemplate(name, size, storageClass='', accessModes=['ReadWriteOnce']):: {
      spec+: {
        volumeClaimTemplates+: [{
          apiVersion: 'v1',
          kind: 'PersistentVolumeClaim',
          metadata: { name: name },
          spec: { accessModes: accessModes, resources: { requests: { storage: size } } }
                + (if storageClass == '' then {} else { storageClassName: storageClass }),
        }],
      },
    },
  },

  job:: metaMixin {
    new(name, namespace, podSpec):: $.object.new('batch/v1', 'Job', name, namespace) {
      spec: { template: { spec: podSpec { restartPolicy: 'OnFailure' } } },
    },
    withBackoffLimit(limit):: { spec+: { backoffLimit: limit } },
    withPodLabels(labels):: { spec+: { template+: { metadata+: { labels+: labels } } } },
  },

  pvc:: metaMixin {
    new(name, namespace, size, accessModes, storageClass=''):: $.object.new('v1', 'PersistentVolumeClaim', name, namespace) {
      spec: { accessModes: accessModes, resources: { requests: { storage: size } } }
            + (if storageClass == '' then {} else { storageClassName: storageClass }),
    },
  },

  pdb:: metaMixin {
    new(name, namespace, selectorLabels, minAvailable, maxUnavailable=null):: $.object.new('policy/v1', 'PodDisruptionBudget', name, namespace) {
      spec: (if maxUnavailable == null then { minAvailable: minAvailable } else { maxUnavailable: maxUnavailable })
            + { selector: { matchLabels: selectorLabels } },
    },
  },

  hpa:: metaMixin {
    // An autoscaling/v2 HorizontalPodAutoscaler on average CPU utilisation.
    new(name, namespace, target, minReplicas, maxReplicas, cpuUtilization):: $.object.new('autoscaling/v2', 'HorizontalPodAutoscaler', name, namespace) {
      spec: {
        scaleTargetRef: { apiVersion: target.apiVersion, kind: target.kind, name: target.metadata.name },
        minReplicas: minReplicas,
        maxReplicas: maxReplicas,
        metrics: [{ type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: cpuUtilization } } }],
      },
    },
    withScaleDown(stabilizationSeconds, podsPerMinute):: {
      spec+: { behavior: { scaleDown: { stabilizationWindowSeconds: stabilizationSeconds, policies: [{ type: 'Pods', value: podsPerMinute, periodSeconds: 60 }] } } },
    },
  },

  cronJob:: metaMixin {
    // Runs `podSpec` on `schedule`, never two at once; failed runs are kept for inspection.
    new(name, namespace, schedule, podSpec):: $.object.new('batch/v1', 'CronJob', name, namespace) {
      spec: {
        schedule: schedule,
        concurrencyPolicy: 'Forbid',
        startingDeadlineSeconds: 300,
        successfulJobsHistoryLimit: 1,
        failedJobsHistoryLimit: 3,
        jobTemplate: { spec: { backoffLimit: 1, template: { spec: podSpec { restartPolicy: 'Never' } } } },
      },
    },
    withPodLabels(labels):: { spec+: { jobTemplate+: { spec+: { template+: { metadata+: { labels+: labels } } } } } },
  },

  rbac:: {
    role(name, namespace, rules):: $.object.new('rbac.authorization.k8s.io/v1', 'Role', name, namespace) { rules: rules },
    rule(apiGroups, resources, verbs):: { apiGroups: apiGroups, resources: resources, verbs: verbs },
    roleBinding(name, namespace, roleName, serviceAccountName)::
      $.object.new('rbac.authorization.k8s.io/v1', 'RoleBinding', name, namespace) {
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: roleName },
        subjects: [{ kind: 'ServiceAccount', name: serviceAccountName, namespace: namespace }],
      },
  },

  // Kinds without a namespace that users may add (extra_manifests); everything else is namespaced.
  clusterScopedKinds:: [
    'Namespace', 'ClusterRole', 'ClusterRoleBinding', 'PriorityClass', 'StorageClass', 'IngressClass',
    'CustomResourceDefinition', 'PersistentVolume', 'ValidatingWebhookConfiguration', 'MutatingWebhookConfiguration',
    'ClusterIssuer', 'ClusterSecretStore',
  ],

  // File name for an object: kind and name, lower-case (`deployment-airflow-scheduler`).
  fileName(obj):: std.asciiLower(obj.kind) + '-' + obj.metadata.name,
  // One file per object, keyed by fileName.
  files(objects):: { [$.fileName(o)]: o for o in objects if o != null },
}
