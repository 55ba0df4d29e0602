-- Logins, registration and sessions: the functions behind /api/auth/* that the gateway
-- calls through PostgREST with the service-role key, and PostgREST's pre-request hook that
-- refuses a logged-out or revoked session. Repeatable (sql/README.md), idempotent; applied
-- after R20_audit.sql (audit_write, request_actor_id) and R30_auth_login_canonical.sql
-- (login_canonical), which these call.
-- Errors meant for the API user are raised as SQLSTATE 'PTxyz', which PostgREST answers
-- with HTTP status xyz and which the gateway passes on as {"error": message}.

-- POST /api/auth/login and /api/auth/token: the account a login name refers to. The `email`
-- field of the legacy login may hold an email or a username; both match in their canonical
-- form (NFKC + case folding, public.login_canonical: the same rule as the rate limit's key
-- in Python), email first. (A family-sized table: the canonical forms are computed per
-- row, no index.) totp_secret is null unless TOTP is enabled (then a code is required).
-- Dropped first: issue 22 added the totp_secret column, and a function's result type
-- cannot be replaced in place.
drop function if exists public.find_login_user(text);
create function public.find_login_user(p_login text)
returns table (id bigint, name text, email text, password_hash text, totp_secret text)
language sql stable security definer set search_path = public, pg_temp
as $$
  select u.id, u.name, u.email, u.password_hash,
         case when u.totp_enabled_at is not null then u.totp_secret end
  from public.users u, public.login_canonical(p_login) as k(login)
  where public.login_canonical(u.email) = k.login or public.login_canonical(u.name) = k.login
  order by (public.login_canonical(u.email) = k.login) is true desc, u.id
  limit 1
$$;

-- ---------------------------------------------------------------------------------------
-- record_login(user_id, success, totp_step, session_id, kind, expires_at, user_agent, ip,
--              refresh_sha256, refresh_expires_at) -> {"ok": bool, "role": text}
-- The end of POST /api/auth/login (kind 'login') and /api/auth/token (kind 'token'), in one
-- transaction: the audit row (auth.login / auth.login_failed; user_id is the account the
-- login name matched, null if none; a failed login has no actor), and on success the
-- session row (its id is the access token's jti) with, for a token session, its first
-- refresh token (its SHA-256 only). With TOTP, totp_step is the time step of the code
-- Python verified: a step at or below the last one accepted is refused (a code works
-- once) and the login fails. Also drops up to 100 sessions expired over a day ago.
-- ---------------------------------------------------------------------------------------
drop function if exists public.record_login(bigint, boolean);
create or replace function public.record_login(
  p_user_id bigint, p_success boolean, p_totp_step bigint default null,
  p_session_id text default null, p_kind text default 'login',
  p_expires_at timestamptz default null, p_user_agent text default null,
  p_ip text default null, p_refresh_sha256 text default null,
  p_refresh_expires_at timestamptz default null)
returns json
language plpgsql volatile security definer set search_path = public, pg_temp
as $$
declare
  ok boolean := p_success and p_user_id is not null;
  user_role text;
begin
  if ok and p_totp_step is not null then
    update public.users set totp_last_step = p_totp_step
    where id = p_user_id and totp_enabled_at is not null
      and (totp_last_step is null or totp_last_step < p_totp_step);
    ok := found;
  end if;
  perform public.audit_write(case when ok then 'auth.login' else 'auth.login_failed' end,
                             p_user_id, null, null, case when ok then p_user_id end);
  if not ok or p_session_id is null then
    return json_build_object('ok', ok);
  end if;
  delete from public.sessions where id in (
    select id from public.sessions where expires_at < now() - interval '1 day'
    order by expires_at limit 100 for update skip locked);
  insert into public.sessions (id, user_id, kind, expires_at, user_agent, ip)
  values (p_session_id, p_user_id, p_kind, p_expires_at, left(p_user_agent, 256), left(p_ip, 64));
  if p_refresh_sha256 is not null then
    insert into public.refresh_tokens (token_sha256, session_id, expires_at)
    values (p_refresh_sha256, p_session_id, p_refresh_expires_at);
  end if;
  select role into user_role from public.users where id = p_user_id;
  return json_build_object('ok', true, 'role', user_role);
end
$$;

-- POST /api/auth/register -> {"id","name","email"}. The unique indexes on lower(name) and
-- lower(email) decide races between concurrent registrations. The audit row (actor: the new
-- user) is written in the same transaction.
create or replace function public.register_user(p_name text, p_email text, p_password_hash text)
returns json
language plpgsql volatile security definer set search_path = public, pg_temp
as $$
declare
  new_user public.users;
  violated text;
begin
  insert into public.users (name, email, password_hash)
  values (p_name, nullif(p_email, ''), p_password_hash)
  returning * into new_user;
  perform public.audit_write('auth.register', new_user.id, null,
                             jsonb_build_object('id', new_user.id, 'name', new_user.name,
                                                'email', new_user.email),
                             new_user.id);
  return json_build_object('id', new_user.id, 'name', new_user.name, 'email', new_user.email);
exception when unique_violation then
  get stacked diagnostics violated = constraint_name;
  if violated like 'users_email%' then
    raise sqlstate 'PT400' using message = 'Email already exists';
  end if;
  raise sqlstate 'PT400' using message = 'Username already exists';
end
$$;

-- POST /api/auth/register with REGISTRATION_MODE=invite: is this code (its SHA-256) unused
-- and unexpired? Checked before the password is hashed, so a made-up code costs no bcrypt.
create or replace function public.invite_is_usable(p_code_sha256 text)
returns boolean
language sql stable security definer set search_path = public, pg_temp
as $$
  select exists (select 1 from public.invites
                 where code_sha256 = p_code_sha256 and used_at is null and expires_at > now())
$$;

-- POST /api/auth/register with REGISTRATION_MODE=invite -> the user as register_user.
-- Consumes the invite and creates the user in one transaction: two registrations racing on
-- one code cannot both succeed (the row lock), and a refused registration (name taken)
-- leaves the code unused.
create or replace function public.register_user_invited(
  p_name text, p_email text, p_password_hash text, p_code_sha256 text)
returns json
language plpgsql volatile security definer set search_path = public, pg_temp
as $$
declare
  invite_id bigint;
  new_user json;
begin
  select id into invite_id from public.invites
  where code_sha256 = p_code_sha256 and used_at is null and expires_at > now()
  for update;
  if invite_id is null then
    raise sqlstate 'PT400' using message = 'Invalid or expired invite code';
  end if;
  new_user := public.register_user(p_name, p_email, p_password_hash);
  update public.invites set used_at = now(), used_by = (new_user ->> 'id')::bigint
  where id = invite_id;
  return new_user;
end
$$;

-- GET /api/auth/me, and every authenticated request (through check_gateway_session):
-- the token's user still exists and the token's session is live. A session with a row
-- in public.sessions (every login since issue 22; p_jti is its id) is live until it is
-- revoked (logout, DELETE /api/auth/sessions, a password change or reset, a reused
-- refresh token, scripts/users.py revoke-sessions: public.revoke_user_sessions). A token
-- without one (issued by the legacy functions or an older release) is live unless it was
-- logged out or issued before the user's sessions were last revoked (p_issued_at = iat).
-- PL/pgSQL, not SQL: a security definer SQL function is never inlined and its query is
-- planned again on every call (PostgreSQL 15), which cost each request ~0.1-0.3 ms of
-- Postgres CPU; PL/pgSQL keeps the plan for the connection's life.
create or replace function public.session_is_valid(p_user_id bigint, p_jti text, p_issued_at bigint)
returns boolean
language plpgsql stable security definer set search_path = public, pg_temp
as $$
declare
  owner_id bigint;
  revoked timestamptz;
begin
  select s.user_id, s.revoked_at into owner_id, revoked from public.sessions s where s.id = p_jti;
  if found then
    return owner_id = p_user_id and revoked is null
       and exists (select 1 from public.users where id = p_user_id);
  end if;
  return exists (select 1 from public.users
                 where id = p_user_id
                   and (sessions_revoked_at is null
                        or to_timestamp(p_issued_at) > sessions_revoked_at))
     and not exists (select 1 from public.revoked_tokens where jti = p_jti);
end
$$;

-- PostgREST pre-request hook (authenticator's pgrst.db_pre_request): runs inside the same
-- transaction as every request. When the gateway names the caller's session in the
-- X-Gateway-Session header ("<userId>:<jti>:<iat>"), a deleted user, a logged-out token or
-- a token issued before the user's sessions were revoked (scripts/users.py revoke-sessions)
-- turns the whole request into 401 without a second round trip. Requests without it pass.
-- Only the service role (the gateway) is checked: for anon or authenticated callers the
-- header is ignored, or anyone holding the public anon key could probe which user ids
-- exist and which tokens were revoked. SECURITY INVOKER, so current_user is the role
-- PostgREST switched to for this request. The jti has one format: 32 hex digits (our
-- tokens) or "legacy-" + 40 hex digits (tokens the legacy functions issued).
create or replace function public.check_gateway_session()
returns void
language plpgsql stable security invoker set search_path = public, pg_temp
as $$
declare
  session text;
  parts text[];
begin
  if current_user <> 'service_role' then
    return;
  end if;
  session := nullif(current_setting('request.headers', true), '')::json ->> 'x-gateway-session';
  if session is null then
    return;
  end if;
  parts := regexp_match(session,
                        '^([0-9]{1,18}):([0-9a-f]{32}|legacy-[0-9a-f]{40}):([0-9]{1,12})$');
  if parts is null
     or not public.session_is_valid(parts[1]::bigint, parts[2], parts[3]::bigint) then
    raise sqlstate 'PT401' using message = 'Invalid or expired token';
  end if;
  -- accepted: require_gateway_session (below) need not look it up again in this transaction
  perform set_config('ffb.gateway_session', session, true);
end
$$;

-- require_gateway_session() -> the session's user id. The first statement of every function
-- the gateway calls for a logged-in user (list, create, get, change, delete and export of
-- expenses, the dashboards, /api/auth/me, /api/dashboard/users, logout, and issue 22's
-- sessions, password change, TOTP and admin functions in R32_accounts.sql): revocation must not
-- depend on the pre-request hook alone, which PostgreSQL 16+ may refuse to set, an admin may
-- skip, or a PostgREST not yet reloaded may not run (issue 21). Inside a PostgREST request
-- (request.headers is set) the X-Gateway-Session header is REQUIRED and must name a valid
-- session, else 401 - a service-role call without one is refused. When the hook already
-- accepted this very header in this transaction (ffb.gateway_session, transaction-local) it
-- is not looked up twice. Outside PostgREST (the owner in SQL: scripts, tests) there is no
-- session and it returns null. SECURITY INVOKER: it runs as the definer function's owner.
create or replace function public.require_gateway_session()
returns bigint
language plpgsql stable security invoker set search_path = public, pg_temp
as $$
declare
  headers text := current_setting('request.headers', true);
  session text;
  parts text[];
begin
  if coalesce(headers, '') = '' then
    return null;
  end if;
  session := headers::json ->> 'x-gateway-session';
  if session is not null and session = current_setting('ffb.gateway_session', true) then
    return split_part(session, ':', 1)::bigint;
  end if;
  parts := regexp_match(coalesce(session, ''),
                        '^([0-9]{1,18}):([0-9a-f]{32}|legacy-[0-9a-f]{40}):([0-9]{1,12})$');
  if parts is null
     or not public.session_is_valid(parts[1]::bigint, parts[2], parts[3]::bigint) then
    raise sqlstate 'PT401' using message = 'Invalid or expired token';
  end if;
  return parts[1]::bigint;
end
$$;

-- gateway_session_check(): nothing but the check, answered 204 or 401. Called by the
-- dashboard cache before it answers a hit (a cached body is never served to a session
-- refused since), and by the gateway's revocation probe (readiness.py) with a session that
-- must be refused: a 204 for it means revocation is not enforced and the gateway fails
-- closed (GET /health/ready and every authenticated route answer 503).
create or replace function public.gateway_session_check()
returns void
language plpgsql stable security definer set search_path = public, pg_temp
as $$
begin
  perform public.require_gateway_session();
end
$$;

-- GET /api/auth/me -> {"id","name","email"} of the session's user, or null (401) when the
-- user no longer exists.
create or replace function public.auth_me()
returns json
language plpgsql stable security definer set search_path = public, pg_temp
as $$
declare
  user_id bigint := public.require_gateway_session();
begin
  return (select json_build_object('id', u.id, 'name', u.name, 'email', u.email)
          from public.users u where u.id = user_id);
end
$$;

-- GET /health/versions (scripts/smoke.py) -> {"postgres": server_version}: what an admin
-- checks right after deploying (PostgREST's own version is its Server header).
create or replace function public.server_versions()
returns json
language plpgsql stable security definer set search_path = public, pg_temp
as $$
begin
  perform public.require_gateway_session();
  return json_build_object('postgres', current_setting('server_version'));
end
$$;

-- POST /api/auth/logout: the token (and its session, with its refresh tokens) is refused
-- from now until it would have expired.
-- Each call also drops up to 100 revocations that have expired (bounded work per call, and
-- the table stays bounded by the tokens still valid). The audit row names the session's
-- user (X-Gateway-Session) and is written in this transaction.
create or replace function public.revoke_token(p_jti text, p_expires_at timestamptz)
returns void
language plpgsql volatile security definer set search_path = public, pg_temp
as $$
begin
  perform public.require_gateway_session();
  delete from public.revoked_tokens where jti in (
    select jti from public.revoked_tokens where expires_at < now()
    order by expires_at limit 100 for update skip locked);
  insert into public.revoked_tokens (jti, expires_at) values (p_jti, p_expires_at)
  on conflict (jti) do nothing;
  update public.sessions set revoked_at = now(), revoked_reason = 'logout'
  where id = p_jti and revoked_at is null;
  perform public.audit_write('auth.logout', public.request_actor_id(), null, null,
                             public.request_actor_id());
end
$$;

-- Only the service role may call these; the pre-request hook runs for every role.
revoke execute on function public.find_login_user(text),
  public.record_login(bigint, boolean, bigint, text, text, timestamptz, text, text, text,
                      timestamptz),
  public.register_user(text, text, text), public.invite_is_usable(text),
  public.register_user_invited(text, text, text, text),
  public.session_is_valid(bigint, text, bigint), public.revoke_token(text, timestamptz),
  public.gateway_session_check(), public.auth_me(), public.server_versions()
  from public, anon, authenticated;
revoke all on function public.require_gateway_session()
  from public, anon, authenticated, service_role;
grant execute on function public.find_login_user(text),
  public.record_login(bigint, boolean, bigint, text, text, timestamptz, text, text, text,
                      timestamptz),
  public.register_user(text, text, text), public.invite_is_usable(text),
  public.register_user_invited(text, text, text, text),
  public.session_is_valid(bigint, text, bigint), public.revoke_token(text, timestamptz),
  public.gateway_session_check(), public.auth_me(), public.server_versions()
  to service_role;
-- The pre-request hook runs as whatever role the request's JWT names, before every request.
revoke all on function public.check_gateway_session() from public;
grant execute on function public.check_gateway_session() to anon, authenticated, service_role;

-- PostgREST's pre-request hook itself (`alter role authenticator set pgrst.db_pre_request
-- to 'public.check_gateway_session'`) is set by the bootstrap as a separate last step
-- (schema.py, PRE_REQUEST_SQL): on hosted Supabase it may be refused, and then everything
-- else must stay applied.
