-- 0008: accounts (issue 22): roles, sessions with refresh tokens, password reset codes, TOTP.
--
-- users.role: admin | member | viewer. Every existing user becomes `member`, which is the
--   legacy behaviour (reads and writes everything a family member may). `viewer` reads what
--   a member reads and may change nothing (public.require_write_access, R31/R40). Admins
--   use /api/admin/*; `scripts/users.py set-role USER admin` makes the first one.
-- sessions: one row per login (legacy POST /api/auth/login, or POST /api/auth/token). Its
--   id is the jti of every access token of the session, so the pre-request hook
--   (public.session_is_valid) refuses a revoked session's tokens on every instance at once.
-- refresh_tokens: only the SHA-256 of each refresh token (256 random bits: a fast hash is
--   enough, and a leaked table holds no usable token). A refresh spends the row and adds
--   its successor; presenting a spent one revokes the whole session (the chain).
-- password_reset_codes: single-use, expiring codes an admin issues; only their SHA-256.
-- users.totp_*: the TOTP secret (needed in clear to verify codes; never in any answer after
--   setup), when it was enabled, a secret being set up, and the last time step accepted
--   (a code is accepted once: a step at or below it is refused).
-- No policies on the new tables: only the service role (BYPASSRLS), through the SECURITY
-- DEFINER functions of sql/R32_accounts.sql, reads or writes them.

alter table public.users add column role text not null default 'member';
alter table public.users add constraint users_role_valid
  check (role in ('admin', 'member', 'viewer'));
alter table public.users add column totp_secret text;
alter table public.users add column totp_pending_secret text;
alter table public.users add column totp_enabled_at timestamptz;
alter table public.users add column totp_last_step bigint;
alter table public.users add constraint users_totp_secret_format
  check (totp_secret ~ '^[A-Z2-7]{16,64}$');
alter table public.users add constraint users_totp_pending_secret_format
  check (totp_pending_secret ~ '^[A-Z2-7]{16,64}$');

create table public.sessions (
  id           text primary key
               constraint sessions_id_format check (id ~ '^([0-9a-f]{32}|legacy-[0-9a-f]{40})$'),
  user_id      bigint not null references public.users (id) on delete cascade,
  kind         text not null constraint sessions_kind_valid check (kind in ('login', 'token')),
  created_at   timestamptz not null default now(),
  last_used_at timestamptz not null default now(),
  expires_at   timestamptz not null,
  revoked_at   timestamptz,
  revoked_reason text,
  user_agent   text constraint sessions_user_agent_length check (char_length(user_agent) <= 256),
  ip           text constraint sessions_ip_length check (char_length(ip) <= 64)
);
create index sessions_user_id_idx on public.sessions (user_id);
create index sessions_expires_at_idx on public.sessions (expires_at);

create table public.refresh_tokens (
  token_sha256 text primary key
               constraint refresh_tokens_sha256_format check (token_sha256 ~ '^[0-9a-f]{64}$'),
  session_id   text not null references public.sessions (id) on delete cascade,
  created_at   timestamptz not null default now(),
  expires_at   timestamptz not null,
  used_at      timestamptz
);
create index refresh_tokens_session_id_idx on public.refresh_tokens (session_id);

create table public.password_reset_codes (
  id          bigint generated always as identity primary key,
  user_id     bigint not null references public.users (id) on delete cascade,
  code_sha256 text not null
              constraint password_reset_codes_sha256_format check (code_sha256 ~ '^[0-9a-f]{64}$'),
  created_at  timestamptz not null default now(),
  expires_at  timestamptz not null,
  used_at     timestamptz,
  created_by  bigint references public.users (id) on delete set null
);
create unique index password_reset_codes_code_sha256_key on public.password_reset_codes (code_sha256);
create index password_reset_codes_user_id_idx on public.password_reset_codes (user_id);

alter table public.sessions enable row level security;
alter table public.refresh_tokens enable row level security;
alter table public.password_reset_codes enable row level security;
revoke all on table public.sessions, public.refresh_tokens, public.password_reset_codes
  from public, anon, authenticated;
