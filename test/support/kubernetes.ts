// Rendered Kubernetes objects, parsed and checked against the schemas of the APIs they belong to.
import { HTTPRoute, type IHTTPRoute } from '@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1';
import {
  type IScaledObject,
  type ITriggerAuthentication,
  ScaledObject,
  TriggerAuthentication,
} from '@kubernetes-models/keda/keda.sh/v1alpha1';
import {
  type IPrometheusRule,
  type IServiceMonitor,
  PrometheusRule,
  ServiceMonitor,
} from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import { Deployment, type IDeployment } from 'kubernetes-models/apps/v1';
import { HorizontalPodAutoscaler, type IHorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { type IJob, Job } from 'kubernetes-models/batch/v1';
import { type IIngress, type INetworkPolicy, Ingress, NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { type IPodDisruptionBudget, PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { type IRole, type IRoleBinding, Role, RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1';
import {
  ConfigMap,
  type IConfigMap,
  type IPersistentVolumeClaim,
  type IPod,
  type IPodSpec,
  type ISecret,
  type IService,
  type IServiceAccount,
  PersistentVolumeClaim,
  Pod,
  Secret,
  Service,
  ServiceAccount,
} from 'kubernetes-models/v1';
import { parseAllDocuments } from 'yaml';

// What every rendered object has; `only` and `ofKind` give it the type of its kind, and the schemas check it.
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
}

/** The interface of each kind the chart renders, as kubernetes-models ships it. */
export interface Kinds {
  ConfigMap: IConfigMap;
  Secret: ISecret;
  Service: IService;
  ServiceAccount: IServiceAccount;
  PersistentVolumeClaim: IPersistentVolumeClaim;
  Pod: IPod;
  Deployment: IDeployment;
  Job: IJob;
  HorizontalPodAutoscaler: IHorizontalPodAutoscaler;
  PodDisruptionBudget: IPodDisruptionBudget;
  Ingress: IIngress;
  NetworkPolicy: INetworkPolicy;
  Role: IRole;
  RoleBinding: IRoleBinding;
  HTTPRoute: IHTTPRoute;
  ScaledObject: IScaledObject;
  TriggerAuthentication: ITriggerAuthentication;
  ServiceMonitor: IServiceMonitor;
  PrometheusRule: IPrometheusRule;
}
export type Kind = keyof Kinds;
/** A rendered object of that kind (or kinds): always named. */
export type Rendered<K extends Kind> = KubeObject & Kinds[K];
/** The kinds with a pod spec. */
export type WithPodSpec = Rendered<'Deployment' | 'Job' | 'Pod'>;

type Model = new (data: never) => { validate(): void };
const MODELS: Record<string, Model> = {
  'v1/ConfigMap': ConfigMap,
  'v1/Secret': Secret,
  'v1/Service': Service,
  'v1/ServiceAccount': ServiceAccount,
  'v1/PersistentVolumeClaim': PersistentVolumeClaim,
  'v1/Pod': Pod,
  'apps/v1/Deployment': Deployment,
  'batch/v1/Job': Job,
  'autoscaling/v2/HorizontalPodAutoscaler': HorizontalPodAutoscaler,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'networking.k8s.io/v1/Ingress': Ingress,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy,
  'rbac.authorization.k8s.io/v1/Role': Role,
  'rbac.authorization.k8s.io/v1/RoleBinding': RoleBinding,
  'gateway.networking.k8s.io/v1/HTTPRoute': HTTPRoute,
  'keda.sh/v1alpha1/ScaledObject': ScaledObject,
  'keda.sh/v1alpha1/TriggerAuthentication': TriggerAuthentication,
  'monitoring.coreos.com/v1/ServiceMonitor': ServiceMonitor,
  'monitoring.coreos.com/v1/PrometheusRule': PrometheusRule,
};

export function parseObjects(yamlText: string): KubeObject[] {
  return parseAllDocuments(yamlText)
    .map((document) => {
      if (document.errors.length) throw new Error(`invalid YAML: ${document.errors[0]!.message}`);
      return document.toJS() as KubeObject | null;
    })
    .filter((object): object is KubeObject => object !== null);
}

/** Throws, naming the object, unless it validates against its API's schema (an unknown kind fails too). */
export function validateObject(object: KubeObject): void {
  const model = MODELS[`${object.apiVersion}/${object.kind}`];
  if (!model) throw new Error(`${object.kind} ${object.metadata.name}: no schema for ${object.apiVersion}`);
  try {
    new model(object as never).validate();
  } catch (err) {
    throw new Error(`${object.kind} ${object.metadata.name} does not validate: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

const isKind = <K extends Kind>(object: KubeObject, kinds: K[]): object is Rendered<K> =>
  kinds.some((kind) => kind === object.kind);

/** The one object of that kind (and name suffix); fails when there is none or more than one. */
export function only<K extends Kind>(objects: KubeObject[], kind: K, nameSuffix = ''): Rendered<K> {
  const found = ofKind(objects, kind).filter((object) => object.metadata.name.endsWith(nameSuffix));
  if (found.length !== 1)
    throw new Error(
      `expected one ${kind} *${nameSuffix}, found ${found.map((o) => o.metadata.name).join(', ') || 'none'}`,
    );
  return found[0]!;
}

/** The objects of that kind (or any of those kinds), in order. */
export const ofKind = <K extends Kind>(objects: KubeObject[], ...kinds: K[]): Rendered<K>[] =>
  objects.filter((object) => isKind(object, kinds));

/** The pod spec of a Deployment or Job, or the spec of a Pod. */
export const podSpecOf = (object: WithPodSpec): IPodSpec =>
  object.kind === 'Pod' ? object.spec! : object.spec!.template.spec!;
