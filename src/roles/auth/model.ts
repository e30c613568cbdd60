/** Route models of the auth role: the single source of truth for validation and OpenAPI. */
import { t } from "elysia";
import { Page, Timestamp, Enum } from "../../platform/http/models";

export const Email = t.String({ format: "email", maxLength: 254, description: "Email address" });
export const Password = t.String({ minLength: 8, maxLength: 256, description: "At least 8 characters" });

export const SignupBody = t.Object({
  email: Email,
  password: Password,
  name: t.Optional(t.String({ minLength: 1, maxLength: 200 })),
});
export const LoginBody = t.Object({
  email: Email,
  password: t.String({ minLength: 1, maxLength: 256 }),
  organization_id: t.Optional(t.String({ maxLength: 64, description: "Log into this organization (default: the first one joined)" })),
});
export const RefreshBody = t.Object({ refresh_token: t.String({ minLength: 1, maxLength: 512 }) });
export const LogoutBody = t.Object({
  refresh_token: t.Optional(t.String({ minLength: 1, maxLength: 512, description: "Revoke this session only; without it every session of the user in this organization ends" })),
});

export const LogoutResult = t.Object({ revoked: t.Integer({ description: "Sessions (refresh tokens) revoked" }) });
export const User = t.Object({ id: t.String(), email: t.String(), name: t.Nullable(t.String()), created_at: Timestamp });
export const Organization = t.Object({ id: t.String(), name: t.String(), plan: t.String(), created_at: Timestamp });
export const Tokens = t.Object({
  access_token: t.String(),
  refresh_token: t.String(),
  token_type: t.Literal("Bearer"),
  expires_in: t.Integer({ description: "Seconds until the access token expires" }),
});
export const Session = t.Composite([t.Object({ user: User, organization: Organization }), Tokens]);
export const Me = t.Object({ user: User, organization: Organization, role: t.String(), auth: Enum(["jwt", "api_key"]) });

const DailySpendCap = t.Integer({
  minimum: 0,
  maximum: 100_000_000,
  description: "Cents that runs created with this key may spend per UTC day at this deployment's model prices; a run that would go over fails with budget_exceeded",
});
export const CreateApiKeyBody = t.Object({
  name: t.String({ minLength: 1, maxLength: 200 }),
  expires_in_days: t.Optional(t.Integer({ minimum: 1, maximum: 3650 })),
  daily_spend_cap_cents: t.Optional(DailySpendCap),
});
export const UpdateApiKeyBody = t.Object(
  {
    name: t.Optional(t.String({ minLength: 1, maxLength: 200 })),
    daily_spend_cap_cents: t.Optional(t.Nullable(DailySpendCap, { description: "null removes the cap" })),
  },
  { minProperties: 1 },
);
export const ApiKey = t.Object({
  id: t.String(),
  name: t.String(),
  prefix: t.String({ description: "The first characters of the key, to tell keys apart" }),
  created_at: Timestamp,
  last_used_at: t.Nullable(Timestamp),
  expires_at: t.Nullable(Timestamp),
  daily_spend_cap_cents: t.Nullable(t.Integer()),
});
export const CreatedApiKey = t.Composite([ApiKey, t.Object({ key: t.String({ description: "The secret key. Shown once: store it now." }) })]);
export const ApiKeyPage = Page(ApiKey);

export const AddMemberBody = t.Object({
  email: Email,
  role: t.Optional(Enum(["owner", "member"], { default: "member" })),
});
export const Member = t.Object({ user_id: t.String(), email: t.String(), name: t.Nullable(t.String()), role: t.String(), created_at: Timestamp });
export const MemberPage = Page(Member);

export type SignupInput = typeof SignupBody.static;
export type LoginInput = typeof LoginBody.static;
export type SessionOut = typeof Session.static;
export type MeOut = typeof Me.static;
export type ApiKeyOut = typeof ApiKey.static;
export type CreateApiKeyInput = typeof CreateApiKeyBody.static;
export type UpdateApiKeyInput = typeof UpdateApiKeyBody.static;
export type CreatedApiKeyOut = typeof CreatedApiKey.static;
export type MemberOut = typeof Member.static;
