-- Accounts (issue 22): sessions and refresh tokens, password change and reset, TOTP, the
-- admin API and roles. The functions behind /api/auth/{token,refresh,session,sessions,
-- password,reset-password,totp} and /api/admin/*, called by the gateway through PostgREST
-- with the service-role key, and by scripts/users.py (set-role, revoke-sessions) as the
-- owner. Repeatable (sql/README.md), idempotent; applied after R20_audit.sql (audit_write,
-- request_actor_id), R21_access_roles.sql (request_role, require_admin) and
-- R31_auth_sessions.sql (record_login). Tables: migration 0008.
-- The caller is public.request_actor_id() (the session the gateway names in
-- X-Gateway-Session, checked by the pre-request hook); every rule (who may do what,
-- rotation, reuse detection, the last admin) is decided here, in the transaction of the
-- change, which also writes its one audit row. Errors meant for the API user are raised as
-- SQLSTATE 'PTxyz' (HTTP status xyz, passed on as {"error": message}).

-- ---------------------------------------------------------------------------------------
-- revoke_user_sessions(user_id, except_session, reason) -> sessions ended
-- Ends every session of a user but `except_session`: their rows are revoked (their access
-- and refresh tokens refused at once, on every instance), and tokens without a row (the
-- legacy functions', an older release's) are cut off by users.sessions_revoked_at.
-- Called by the password change and reset, DELETE /api/auth/sessions, an admin reset and
-- scripts/users.py revoke-sessions / reset-password. Writes no audit row: its callers do.
-- ---------------------------------------------------------------------------------------
create or replace function public.revoke_user_sessions(
  p_user_id bigint, p_except_session text, p_reason text)
returns integer
language plpgsql volatile security definer set search_path = public, pg_temp
as $$
declare
  ended integer;
begin
  update public.users set sessions_revoked_at = now() where id = p_user_id;
  update public.sessions set revoked_at = now(), revoked_reason = p_reason
  where user_id = p_user_id and revoked_at is null and expires_at > now()
    and id is distinct from p_except_session;
  get diagnostics ended = row_count;
  return ended;
end
$$;

-- The caller's own session, given its token's id, expiry and issue time. A token issued
-- before issue 22 (or by the legacy functions) has no row; it gets one here, so that the
-- cut-off of revoke_user_sessions spares it like any other current session.
create or replace function public.adopt_session(p_session_id text, p_expires_at timestamptz,
                                                p_issued_at bigint)
returns void
language plpgsql volatile security definer set search_path = public, pg_temp
as $$
begin
  insert into public.sessions (id, user_id, kind, created_at, last_used_at, expires_at)
  values (p_session_id, public.request_actor_id(), 'login', to_timestamp(p_issued_at),
          to_timestamp(p_issued_at), p_expires_at)
  on conflict (id) do nothing;
end
$$;

-- ---------------------------------------------------------------------------------------
-- refresh_session(token_sha256, new_sha256, new_expires_at) -> json
-- POST /api/auth/refresh. Rotation: the presented refresh token is spent and its successor
-- stored, in one transaction (the row lock decides two refreshes racing on one token: one
-- wins, the other sees it spent). A spent token presented again is theft: the whole
-- session (the chain, its newest pair included) is revoked and audited
-- (auth.refresh_reuse); the answer is {"ok": false} (not an exception, which would roll
-- the revocation back). Success: {"ok": true, "session_id", "user": {...}, "role"}.
-- ---------------------------------------------------------------------------------------
create or replace function public.refresh_session(
  p_token_sha256 text, p_new_sha256 text, p_new_expires_at timestamptz)
returns json
language plpgsql volatile security definer set search_path = public, pg_temp
as $$
declare
  token public.refresh_tokens;
  session public.sessions;
  account public.users;
begin
  select * into token from public.refresh_tokens where token_sha256 = p_token_sha256 for update;
  if not found then
    return json_build_object('ok', false);
  end if;
  select * into session from public.sessions where id = token.session_id for update;
  if token.used_at is not null then
    if session.revoked_at is null then
      update public.sessions set revoked_at = now(), revoked_reason = 'refresh_reuse'
      where id = session.id;
      perform public.audit_write('auth.refresh_reuse', session.user_id, null,
                                 jsonb_build_object('session_id', session.id), null);
    end if;
    return json_build_object('ok', false);
  end if;
  if session.revoked_at is not null or token.expires_at <= now() then
    return json_build_object('ok', false);
  end if;
  select * into account from public.users where id = session.user_id;
  update public.refresh_tokens set used_at = now() where token_sha256 = p_token_sha256;
  insert into public.refresh_tokens (token_sha256, session_id, expires_at)
  values (p_new_sha256, session.id, p_new_expires_at);
  update public.sessions set last_used_at = now(), expires_at = greatest(expires_at, p_new_expires_at)
  where id = session.id;
  perform public.audit_write('auth.refresh', account.id, null, null, account.id);
  return json_build_object('ok', true, 'session_id', session.id, 'role', account.role,
                           'user', json_build_object('id', account.id, 'name', account.name,
                                                     'email', account.email));
end
$$;

-- ---------------------------------------------------------------------------------------
-- GET /api/auth/session -> {"user": {...}, "role", "session": {"id", "expires_at"}} for the
-- caller's token (p_session_id = its jti; p_expires_at = its exp, the answer for a token
-- without a session row). Marks the session used.
-- ---------------------------------------------------------------------------------------
create or replace function public.current_session(p_session_id text, p_expires_at timestamptz)
returns json
language plpgsql volatile security definer set search_path = public, pg_temp
as $$
declare
  account public.users;
  expires timestamptz;
begin
  perform public.require_gateway_session();  -- issue 21: a refused session stops here
  select * into account from public.users where id = public.request_actor_id();
  if not found then
    raise sqlstate 'PT401' using message = 'Invalid or expired token';
  end if;
  update public.sessions set last_used_at = now()
  where id = p_session_id and user_id = account.id
  returning expires_at into expires;
  return json_build_object(
    'user', json_build_object('id', account.id, 'name', account.name, 'email', account.email),
    'role', account.role,
    'session', json_build_object('id', p_session_id, 'expires_at', coalesce(expires, p_expires_at)));
end
$$;

-- GET /api/auth/sessions -> [{"id","created_at","last_used_at","user_agent","ip","current"}]
-- the caller's live sessions, newest first (logins and token sessions alike).
create or replace function public.list_sessions(p_current text)
returns json
language plpgsql stable security definer set search_path = public, pg_temp
as $$
begin
  perform public.require_gateway_session();  -- issue 21: a refused session stops here
  return (
    select coalesce(json_agg(json_build_object(
             'id', s.id, 'created_at', s.created_at, 'last_used_at', s.last_used_at,
             'user_agent', s.user_agent, 'ip', s.ip, 'current', s.id = p_current)
           order by s.created_at desc, s.id), '[]')
    from public.sessions s
    where s.user_id = public.request_actor_id() and s.revoked_at is null and s.expires_at > now()
  );
end
$$;

-- DELETE /api/auth/sessions/{id} -> {"id"}: ends one of the caller's live sessions (404 if
-- it is not one). Audit: auth.session_revoke.
create or replace function public.revoke_session(p_id text)
returns json
language plpgsql volatile security definer set search_path = public, pg_temp
as $$
declare
  actor bigint := public.request_actor_id();
begin
  perform public.require_gateway_session();  -- issue 21: a refused session stops here
  update public.sessions set revoked_at = now(), revoked_reason = 'revoked'
  where id = p_id and user_id = actor and revoked_at is null and expires_at > now();
  if not found then
    raise sqlstate 'PT404' using message = 'Session not found';
  end if;
  perform public.audit_write('auth.session_revoke', actor, null,
                             jsonb_build_object('session_id', p_id), actor);
  return json_build_object('id', p_id);
end
$$;

-- DELETE /api/auth/sessions -> {"ended": N}: every session of the caller but the current
-- one. Audit: auth.sessions_revoke.
create or replace function public.revoke_other_sessions(
  p_current text, p_expires_at timestamptz, p_issued_at bigint)
returns json
language plpgsql volatile security definer set search_path = public, pg_temp
as $$
declare
  actor bigint := public.request_actor_id();
  ended integer;
begin
  perform public.require_gateway_session();  -- issue 21: a refused session stops here
  perform public.adopt_session(p_current, p_expires_at, p_issued_at);
  ended := public.revoke_user_sessions(actor, p_current, 'revoked');
  perform public.audit_write('auth.sessions_revoke', actor, null,
                             jsonb_build_object('ended', ended), actor);
  return json_build_object('ended', ended);
end
$$;

-- ---------------------------------------------------------------------------------------
-- Passwords
-- ---------------------------------------------------------------------------------------
-- PUT /api/auth/password, step 1: the caller's bcrypt hash (verified in Python, off the
-- event loop; never in an answer).
create or replace function public.caller_password_hash()
returns text
language plpgsql stable security definer set search_path = public, pg_temp
as $$
begin
  perform public.require_gateway_session();  -- issue 21: a refused session stops here
  return (
    select password_hash from public.users where id = public.request_actor_id()
  );
end
$$;

-- PUT /api/auth/password, step 2 -> {"ended": N}: the new hash; every other session ends.
-- Audit: auth.password_change (no hash in it).
create or replace function public.change_password(
  p_password_hash text, p_current text, p_expires_at timestamptz, p_issued_at bigint)
returns json
language plpgsql volatile security definer set search_path = public, pg_temp
as $$
declare
  actor bigint := public.request_actor_id();
  ended integer;
begin
  perform public.require_gateway_session();  -- issue 21: a refused session stops here
  update public.users set password_hash = p_password_hash where id = actor;
  if not found then
    raise sqlstate 'PT401' using message = 'Invalid or expired token';
  end if;
  perform public.adopt_session(p_current, p_expires_at, p_issued_at);
  ended := public.revoke_user_sessions(actor, p_current, 'password_change');
  perform public.audit_write('auth.password_change', actor, null,
                             jsonb_build_object('sessions_ended', ended), actor);
  return json_build_object('ended', ended);
end
$$;

-- POST /api/auth/reset-password, before bcrypt: is this code (its SHA-256) unused and
-- unexpired? A made-up code costs one indexed lookup, not a hash.
create or replace function public.reset_code_is_usable(p_code_sha256 text)
returns boolean
language sql stable security definer set search_path = public, pg_temp
as $$
  select exists (select 1 from public.password_reset_codes
                 where code_sha256 = p_code_sha256 and used_at is null and expires_at > now())
$$;

-- POST /api/auth/reset-password -> {"id","name","email"}: sets the password, spends the
-- code (the row lock: a code works once, even raced) and ends every session of the user.
-- Audit: auth.password_reset.
create or replace function public.reset_password(p_code_sha256 text, p_password_hash text)
returns json
language plpgsql volatile security definer set search_path = public, pg_temp
as $$
declare
  code public.password_reset_codes;
  account public.users;
begin
  select * into code from public.password_reset_codes
  where code_sha256 = p_code_sha256 and used_at is null and expires_at > now()
  for update;
  if not found then
    raise sqlstate 'PT400' using message = 'Invalid or expired reset code';
  end if;
  update public.password_reset_codes set used_at = now() where id = code.id;
  update public.users set password_hash = p_password_hash where id = code.user_id
  returning * into account;
  perform public.revoke_user_sessions(account.id, null, 'password_reset');
  perform public.audit_write('auth.password_reset', account.id, null, null, account.id);
  return json_build_object('id', account.id, 'name', account.name, 'email', account.email);
end
$$;

-- ---------------------------------------------------------------------------------------
-- TOTP (the codes are checked in Python with pyotp; single use is decided here)
-- ---------------------------------------------------------------------------------------
-- The caller's TOTP state: {"enabled", "secret" (when enabled), "pending" (being set up)}.
create or replace function public.totp_state()
returns json
language plpgsql stable security definer set search_path = public, pg_temp
as $$
begin
  perform public.require_gateway_session();  -- issue 21: a refused session stops here
  return (
    select json_build_object('enabled', totp_enabled_at is not null,
                             'secret', case when totp_enabled_at is not null then totp_secret end,
                             'pending', totp_pending_secret, 'name', name, 'email', email)
    from public.users where id = public.request_actor_id()
  );
end
$$;

-- POST /api/auth/totp/setup: stores the secret being set up (409 once enabled).
create or replace function public.totp_begin(p_secret text)
returns void
language plpgsql volatile security definer set search_path = public, pg_temp
as $$
begin
  perform public.require_gateway_session();  -- issue 21: a refused session stops here
  update public.users set totp_pending_secret = p_secret
  where id = public.request_actor_id() and totp_enabled_at is null;
  if not found then
    raise sqlstate 'PT409' using message = 'TOTP is already enabled';
  end if;
end
$$;

-- POST /api/auth/totp/enable with a code of the pending secret at time step p_step.
-- Audit: auth.totp_enable.
create or replace function public.totp_enable(p_secret text, p_step bigint)
returns json
language plpgsql volatile security definer set search_path = public, pg_temp
as $$
declare
  actor bigint := public.request_actor_id();
begin
  perform public.require_gateway_session();  -- issue 21: a refused session stops here
  update public.users set totp_secret = p_secret, totp_pending_secret = null,
                          totp_enabled_at = now(), totp_last_step = p_step
  where id = actor and totp_enabled_at is null and totp_pending_secret = p_secret;
  if not found then
    raise sqlstate 'PT409' using message = 'TOTP setup has changed; start again';
  end if;
  perform public.audit_write('auth.totp_enable', actor, null, null, actor);
  return json_build_object('enabled', true);
end
$$;

-- DELETE /api/auth/totp with a code at time step p_step: refused (400) if that step was
-- already used (a code works once). Audit: auth.totp_disable.
create or replace function public.totp_disable(p_step bigint)
returns json
language plpgsql volatile security definer set search_path = public, pg_temp
as $$
declare
  actor bigint := public.request_actor_id();
begin
  perform public.require_gateway_session();  -- issue 21: a refused session stops here
  update public.users set totp_secret = null, totp_pending_secret = null,
                          totp_enabled_at = null, totp_last_step = null
  where id = actor and totp_enabled_at is not null
    and (totp_last_step is null or totp_last_step < p_step);
  if not found then
    raise sqlstate 'PT400' using message = 'Invalid TOTP code';
  end if;
  perform public.audit_write('auth.totp_disable', actor, null, null, actor);
  return json_build_object('enabled', false);
end
$$;

-- ---------------------------------------------------------------------------------------
-- Roles and the last admin
-- ---------------------------------------------------------------------------------------
-- set_user_role(user_id, role) -> the user as admin_user_json. The deployment keeps at
-- least one admin once it has one: demoting the last is 409. All admin rows are locked
-- first, so two admins demoting each other concurrently cannot both succeed.
-- Called by PATCH /api/admin/users/{id} and scripts/users.py set-role. Audit: user.role.
create or replace function public.admin_user_json(p_user public.users)
returns json
language sql stable security definer set search_path = public, pg_temp
as $$
  select json_build_object('id', p_user.id, 'name', p_user.name, 'email', p_user.email,
                           'role', p_user.role, 'created_at', p_user.created_at,
                           'expense_count', (select count(*) from public.expenses e
                                             where e.user_id = p_user.id))
$$;

create or replace function public.lock_admins_keeping_one(p_user_id bigint)
returns void
language plpgsql volatile security definer set search_path = public, pg_temp
as $$
begin
  perform 1 from public.users where role = 'admin' order by id for update;
  if exists (select 1 from public.users where id = p_user_id and role = 'admin')
     and (select count(*) from public.users where role = 'admin') = 1 then
    raise sqlstate 'PT409' using message = 'The last admin cannot be demoted or deleted';
  end if;
end
$$;

create or replace function public.set_user_role(p_user_id bigint, p_role text)
returns json
language plpgsql volatile security definer set search_path = public, pg_temp
as $$
declare
  old_role text;
  account public.users;
begin
  if p_role is null or p_role not in ('admin', 'member', 'viewer') then
    raise sqlstate 'PT400' using message = 'role: must be admin, member or viewer';
  end if;
  select role into old_role from public.users where id = p_user_id;
  if not found then
    raise sqlstate 'PT404' using message = 'User not found';
  end if;
  if old_role = 'admin' and p_role <> 'admin' then
    perform public.lock_admins_keeping_one(p_user_id);
  end if;
  update public.users set role = p_role where id = p_user_id returning * into account;
  if old_role <> p_role then
    perform public.audit_write('user.role', p_user_id, jsonb_build_object('role', old_role),
                               jsonb_build_object('role', p_role), public.request_actor_id());
  end if;
  return public.admin_user_json(account);
end
$$;

-- ---------------------------------------------------------------------------------------
-- The admin API (/api/admin/*): admins only (public.require_admin, 403 for others); one
-- audit row per action; no password, hash or code in any answer or audit row (a reset
-- code or invite code travels only in the answer that creates it, made in Python).
-- ---------------------------------------------------------------------------------------
-- GET /api/admin/users -> [admin_user_json], by id.
create or replace function public.admin_list_users()
returns json
language plpgsql stable security definer set search_path = public, pg_temp
as $$
begin
  perform public.require_gateway_session();  -- issue 21: a refused session stops here
  perform public.require_admin();
  return (select coalesce(json_agg(json_build_object(
                   'id', u.id, 'name', u.name, 'email', u.email, 'role', u.role,
                   'created_at', u.created_at, 'expense_count', coalesce(c.n, 0))
                 order by u.id), '[]')
          from public.users u
          left join (select user_id, count(*) as n from public.expenses group by user_id) c
            on c.user_id = u.id);
end
$$;

-- POST /api/admin/users -> admin_user_json. Without a password (p_password_hash null) the
-- account gets an unusable hash and a reset code (its SHA-256 here) to hand over.
-- Audit: admin.user_create.
create or replace function public.admin_create_user(
  p_name text, p_email text, p_role text, p_password_hash text,
  p_reset_sha256 text, p_reset_expires_at timestamptz)
returns json
language plpgsql volatile security definer set search_path = public, pg_temp
as $$
declare
  account public.users;
  violated text;
begin
  perform public.require_gateway_session();  -- issue 21: a refused session stops here
  perform public.require_admin();
  insert into public.users (name, email, password_hash, role)
  values (p_name, nullif(p_email, ''), coalesce(p_password_hash, '!'), coalesce(p_role, 'member'))
  returning * into account;
  if p_reset_sha256 is not null then
    insert into public.password_reset_codes (user_id, code_sha256, expires_at, created_by)
    values (account.id, p_reset_sha256, p_reset_expires_at, public.request_actor_id());
  end if;
  perform public.audit_write('admin.user_create', account.id, null,
                             jsonb_build_object('id', account.id, 'name', account.name,
                                                'email', account.email, 'role', account.role),
                             public.request_actor_id());
  return public.admin_user_json(account);
exception when unique_violation then
  get stacked diagnostics violated = constraint_name;
  if violated like 'users_email%' then
    raise sqlstate 'PT400' using message = 'Email already exists';
  end if;
  raise sqlstate 'PT400' using message = 'Username already exists';
end
$$;

-- PATCH /api/admin/users/{id} {"role"?, "email"?, "name"?} -> admin_user_json.
-- Audit: admin.user_update (before/after of the changed fields).
create or replace function public.admin_update_user(p_id bigint, p_changes jsonb)
returns json
language plpgsql volatile security definer set search_path = public, pg_temp
as $$
declare
  old_row public.users;
  account public.users;
  violated text;
begin
  perform public.require_gateway_session();  -- issue 21: a refused session stops here
  perform public.require_admin();
  select * into old_row from public.users where id = p_id for update;
  if not found then
    raise sqlstate 'PT404' using message = 'User not found';
  end if;
  if p_changes ? 'role' and old_row.role = 'admin' and p_changes ->> 'role' <> 'admin' then
    perform public.lock_admins_keeping_one(p_id);
  end if;
  update public.users u set
    role = case when p_changes ? 'role' then p_changes ->> 'role' else u.role end,
    email = case when p_changes ? 'email' then nullif(p_changes ->> 'email', '') else u.email end,
    name = case when p_changes ? 'name' then p_changes ->> 'name' else u.name end
  where u.id = p_id
  returning * into account;
  perform public.audit_write('admin.user_update', p_id,
                             jsonb_build_object('name', old_row.name, 'email', old_row.email,
                                                'role', old_row.role),
                             jsonb_build_object('name', account.name, 'email', account.email,
                                                'role', account.role),
                             public.request_actor_id());
  return public.admin_user_json(account);
exception when unique_violation then
  get stacked diagnostics violated = constraint_name;
  if violated like 'users_email%' then
    raise sqlstate 'PT400' using message = 'Email already exists';
  end if;
  raise sqlstate 'PT400' using message = 'Username already exists';
end
$$;

-- POST /api/admin/users/{id}/reset -> {"expires_at"}: a new single-use reset code (its
-- SHA-256; earlier unused codes of the user are spent), every session of the user ends
-- and TOTP is cleared. Audit: admin.user_reset.
create or replace function public.admin_reset_user(
  p_id bigint, p_code_sha256 text, p_expires_at timestamptz)
returns json
language plpgsql volatile security definer set search_path = public, pg_temp
as $$
declare
  ended integer;
begin
  perform public.require_gateway_session();  -- issue 21: a refused session stops here
  perform public.require_admin();
  update public.users set totp_secret = null, totp_pending_secret = null,
                          totp_enabled_at = null, totp_last_step = null
  where id = p_id;
  if not found then
    raise sqlstate 'PT404' using message = 'User not found';
  end if;
  update public.password_reset_codes set used_at = now()
  where user_id = p_id and used_at is null;
  insert into public.password_reset_codes (user_id, code_sha256, expires_at, created_by)
  values (p_id, p_code_sha256, p_expires_at, public.request_actor_id());
  ended := public.revoke_user_sessions(p_id, null, 'admin_reset');
  perform public.audit_write('admin.user_reset', p_id, null,
                             jsonb_build_object('sessions_ended', ended, 'totp_cleared', true),
                             public.request_actor_id());
  return json_build_object('expires_at', p_expires_at);
end
$$;

-- DELETE /api/admin/users/{id} -> {"user": admin_user_json, "expenses_deleted": N}: the
-- user and, by the foreign keys' cascade, their expenses, totals, sessions and codes (each
-- expense keeps its own expense.delete audit row). The last admin stays (409).
-- Audit: admin.user_delete.
create or replace function public.admin_delete_user(p_id bigint)
returns json
language plpgsql volatile security definer set search_path = public, pg_temp
as $$
declare
  account public.users;
  removed json;
begin
  perform public.require_gateway_session();  -- issue 21: a refused session stops here
  perform public.require_admin();
  select * into account from public.users where id = p_id for update;
  if not found then
    raise sqlstate 'PT404' using message = 'User not found';
  end if;
  if account.role = 'admin' then
    perform public.lock_admins_keeping_one(p_id);
  end if;
  removed := public.admin_user_json(account);
  delete from public.users where id = p_id;
  perform public.audit_write('admin.user_delete', p_id, removed::jsonb, null,
                             public.request_actor_id());
  return json_build_object('user', removed, 'expenses_deleted', (removed ->> 'expense_count')::bigint);
end
$$;

-- POST /api/admin/invites -> {"id","expires_at","note"}: as scripts/users.py invite (the
-- code's SHA-256 only). Audit: admin.invite_create.
create or replace function public.admin_create_invite(
  p_code_sha256 text, p_expires_at timestamptz, p_note text)
returns json
language plpgsql volatile security definer set search_path = public, pg_temp
as $$
declare
  invite public.invites;
begin
  perform public.require_gateway_session();  -- issue 21: a refused session stops here
  perform public.require_admin();
  insert into public.invites (code_sha256, expires_at, note)
  values (p_code_sha256, p_expires_at, p_note)
  returning * into invite;
  perform public.audit_write('admin.invite_create', invite.id, null,
                             jsonb_build_object('expires_at', invite.expires_at, 'note', invite.note),
                             public.request_actor_id());
  return json_build_object('id', invite.id, 'expires_at', invite.expires_at, 'note', invite.note);
end
$$;

-- ---------------------------------------------------------------------------------------
-- Privileges: the gateway (service role) calls the endpoints' functions; the helpers run
-- only inside them, as their owner (scripts/users.py, as the owner, calls set_user_role
-- and revoke_user_sessions).
-- ---------------------------------------------------------------------------------------
revoke all on function public.revoke_user_sessions(bigint, text, text),
  public.adopt_session(text, timestamptz, bigint),
  public.refresh_session(text, text, timestamptz),
  public.current_session(text, timestamptz), public.list_sessions(text),
  public.revoke_session(text), public.revoke_other_sessions(text, timestamptz, bigint),
  public.caller_password_hash(), public.change_password(text, text, timestamptz, bigint),
  public.reset_code_is_usable(text), public.reset_password(text, text),
  public.totp_state(), public.totp_begin(text), public.totp_enable(text, bigint),
  public.totp_disable(bigint), public.admin_user_json(public.users),
  public.lock_admins_keeping_one(bigint), public.set_user_role(bigint, text),
  public.admin_list_users(), public.admin_create_user(text, text, text, text, text, timestamptz),
  public.admin_update_user(bigint, jsonb), public.admin_reset_user(bigint, text, timestamptz),
  public.admin_delete_user(bigint), public.admin_create_invite(text, timestamptz, text)
  from public, anon, authenticated, service_role;
grant execute on function public.refresh_session(text, text, timestamptz),
  public.current_session(text, timestamptz), public.list_sessions(text),
  public.revoke_session(text), public.revoke_other_sessions(text, timestamptz, bigint),
  public.caller_password_hash(), public.change_password(text, text, timestamptz, bigint),
  public.reset_code_is_usable(text), public.reset_password(text, text),
  public.totp_state(), public.totp_begin(text), public.totp_enable(text, bigint),
  public.totp_disable(bigint),
  public.admin_list_users(), public.admin_create_user(text, text, text, text, text, timestamptz),
  public.admin_update_user(bigint, jsonb), public.admin_reset_user(bigint, text, timestamptz),
  public.admin_delete_user(bigint), public.admin_create_invite(text, timestamptz, text)
  to service_role;
