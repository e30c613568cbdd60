/** The whole relational schema, one file per domain; drizzle-kit generates schema/migrations from it. */
export * from "./auth";
export * from "./agents";
export * from "./memory";
export * from "./tools";
export * from "./billing";
export * from "./events";
export * from "./notify";
export * from "./schedules";
export * from "./budgets";
export * from "./compaction";
