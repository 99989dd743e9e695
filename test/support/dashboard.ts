// The Grafana dashboard of observability/, as the tests read it.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { REPOSITORY } from '../../scripts/helm.js';

export interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { uid: string };
  targets?: Array<{ expr: string; datasource: { uid: string } }>;
}

export interface Dashboard {
  uid: string;
  title: string;
  panels: Panel[];
  templating: { list: Array<{ name: string }> };
}

export const dashboard = (): Dashboard =>
  JSON.parse(readFileSync(path.join(REPOSITORY, 'observability/dashboard.json'), 'utf8')) as Dashboard;

/** The PromQL of every panel's targets, in panel order. */
export const dashboardQueries = (): string[] =>
  dashboard()
    .panels.flatMap((panel) => panel.targets ?? [])
    .map((target) => target.expr);
