/**
 * Real resources to aim the fuzz at, discovered from the document: a path parameter `{p}` in
 * `/coll/{p}` is an id of a resource when `POST /coll` exists. Such resources are created
 * (parents first: `/v1/agents/{id}/memories` needs an agent) with bodies generated from the
 * POST's schema until one is accepted; the entries remember their parent bindings so a nested
 * path is always filled with ids that belong together.
 */
import fc from "fast-check";
import { collectionOf, lastSegment, pathParamNames, type Operation, type Validators } from "./openapi";
import { toJsonText } from "./hostile";
import { validArbitrary, type ArbitraryContext } from "./schema-arbitrary";

export interface User {
  token: string;
  orgId: string;
  userId: string;
  label: string;
}

export interface Resource {
  /** The POST collection template, e.g. /v1/agents/{id}/memories. */
  collection: string;
  /** The collection's own parameters bound to ids (parents). */
  bindings: Record<string, string>;
  id: string;
  owner: User;
}

export interface CreateFailure {
  collection: string;
  reason: string;
}

export function fillPath(template: string, values: Record<string, string>): string {
  return template.replace(/\{([^}]+)\}/g, (_, name) => values[name] ?? `{${name}}`);
}

export class Resources {
  readonly all: Resource[] = [];
  readonly failures: CreateFailure[] = [];
  private posts = new Map<string, Operation>();
  private seed: number;

  constructor(
    private ops: Operation[],
    private baseUrl: string,
    private validators: Validators,
    seed: number,
    private urlBase?: string,
  ) {
    // A collection is a POST whose path also has items: POST /coll and some /coll/{param}.
    const itemised = (path: string) => ops.some((o) => o.path.startsWith(`${path}/{`));
    for (const op of ops) if (op.method === "POST" && op.body && itemised(op.path)) this.posts.set(op.path, op);
    this.seed = seed;
  }

  /** Collection names ("tools", "memories") that can be created, for `<thing>_id` hints. */
  get collectionNames(): Set<string> {
    return new Set([...this.posts.keys()].map(lastSegment));
  }

  isCreatable(collection: string): boolean {
    return this.posts.has(collection);
  }

  get creatable(): string[] {
    return [...this.posts.keys()];
  }

  /** The creatable collection behind a path parameter, if any. */
  collectionFor(path: string, param: string): string | undefined {
    const c = collectionOf(path, param);
    return c && this.posts.has(c) ? c : undefined;
  }

  /** Ids deleted (by the fuzz or a test): they and everything under them are gone. */
  readonly deleted = new Set<string>();

  isAlive(r: Resource): boolean {
    return !this.deleted.has(r.id) && !Object.values(r.bindings).some((id) => this.deleted.has(id));
  }

  owned(user: User, collection?: string, bindings: Record<string, string> = {}): Resource[] {
    return this.all.filter(
      (r) => r.owner === user && this.isAlive(r) && (collection === undefined || r.collection === collection) && Object.entries(bindings).every(([k, v]) => r.bindings[k] === v),
    );
  }

  context(user: User, typedNumbers = false): ArbitraryContext {
    return {
      typedNumbers,
      urlBase: this.urlBase,
      collections: this.collectionNames,
      idsFor: (name) => this.all.filter((r) => r.owner === user && lastSegment(r.collection) === name).map((r) => r.id),
    };
  }

  /**
   * Creates one resource of `collection` for `user`, creating the parents it needs.
   * Returns undefined (and records why) when no generated body was accepted.
   */
  async create(user: User, collection: string, bindings: Record<string, string> = {}, attempts = 60): Promise<Resource | undefined> {
    const op = this.posts.get(collection);
    if (!op) return undefined;
    const full: Record<string, string> = { ...bindings };
    for (const param of pathParamNames(collection)) {
      if (full[param]) continue;
      const parentCollection = this.collectionFor(collection, param);
      const parent = parentCollection ? this.owned(user, parentCollection)[0] ?? (await this.create(user, parentCollection, full)) : undefined;
      if (!parent) {
        this.failures.push({ collection, reason: `no ${param}: parent collection ${collectionOf(collection, param)} cannot be created` });
        return undefined;
      }
      Object.assign(full, parent.bindings, { [param]: parent.id });
    }
    const bodies = fc.sample(validArbitrary(op.body, this.context(user, true)), { numRuns: attempts, seed: this.seed++ });
    let last = "";
    let madeRoom = false;
    for (const body of bodies) {
      if (this.validators.errors(op.body!, body)) continue;
      const res = await fetch(this.baseUrl + fillPath(collection, full), {
        method: "POST",
        headers: { authorization: `Bearer ${user.token}`, "content-type": "application/json" },
        body: toJsonText(body),
      });
      const text = await res.text();
      if (res.status >= 200 && res.status < 300) {
        const id = (JSON.parse(text) as { id?: unknown }).id;
        if (typeof id !== "string") {
          this.failures.push({ collection, reason: `2xx reply without a string id: ${text.slice(0, 200)}` });
          return undefined;
        }
        const resource = { collection, bindings: full, id, owner: user };
        this.all.push(resource);
        return resource;
      }
      last = `${res.status} ${text.slice(0, 200)}`;
      // A per-organization limit (20 webhooks) reached by earlier fuzz requests: make room once.
      if (res.status === 422 && text.includes('"code":"too_many_') && !madeRoom) madeRoom = await this.makeRoom(user, fillPath(collection, full));
    }
    this.failures.push({ collection, reason: `no generated body accepted in ${attempts} tries; last reply ${last}` });
    return undefined;
  }

  /** Deletes one of `user`'s items of the collection at `path` (preferably one no test holds): whether it did. */
  private async makeRoom(user: User, path: string): Promise<boolean> {
    const headers = { authorization: `Bearer ${user.token}` };
    const list = (await (await fetch(`${this.baseUrl}${path}?limit=100`, { headers })).json().catch(() => null)) as { data?: { id: string }[] } | null;
    const ids = (list?.data ?? []).map((r) => r.id);
    const victim = ids.find((id) => !this.all.some((r) => r.id === id)) ?? ids[0];
    if (!victim) return false;
    const res = await fetch(`${this.baseUrl}${path}/${victim}`, { method: "DELETE", headers });
    const index = this.all.findIndex((r) => r.id === victim);
    if (index >= 0) this.all.splice(index, 1);
    return res.ok;
  }

  /** Records a resource a fuzz request created (a 2xx POST with an id). */
  adopt(user: User, collection: string, bindings: Record<string, string>, id: string) {
    if (!this.all.some((r) => r.id === id)) this.all.push({ collection, bindings, id, owner: user });
  }

  /**
   * Values for the path parameters of `path` that belong together for `user`: the deepest
   * creatable parameter picks a resource, whose bindings fill its parents. Parameters left
   * unbound (not creatable, or nothing created) are absent from the result.
   */
  bind(path: string, user: User, pick: (n: number) => number): Record<string, string> {
    const params = pathParamNames(path);
    for (let i = params.length - 1; i >= 0; i--) {
      const collection = this.collectionFor(path, params[i]);
      if (!collection) continue;
      const candidates = this.owned(user, collection);
      if (!candidates.length) continue;
      const r = candidates[pick(candidates.length)];
      return { ...r.bindings, [params[i]]: r.id };
    }
    return {};
  }
}
