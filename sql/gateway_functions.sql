-- Functions the gateway calls through PostgREST with the service-role key: logins,
-- sessions, idempotent expense creation and shared rate-limit counters. A repeatable file
-- (re-applied by the bootstrap when it changes), idempotent.
-- Errors meant for the API user are raised as SQLSTATE 'PTxyz', which PostgREST answers
-- with HTTP status xyz and which the gateway passes on as {"error": message}.

-- POST /api/auth/login: the account a login name refers to. The `email` field of the legacy
-- login may hold an email or a username; both match in their canonical form (NFKC + case
-- folding, public.login_canonical: the same rule as the rate limit's key in Python), email
-- first. (A family-sized table: the canonical forms are computed per row, no index.)
create or replace function public.find_login_user(p_login text)
returns table (id bigint, name text, email text, password_hash text)
language sql stable security definer set search_path = public, pg_temp
as $$
  select u.id, u.name, u.email, u.password_hash
  from public.users u, public.login_canonical(p_login) as k(login)
  where public.login_canonical(u.email) = k.login or public.login_canonical(u.name) = k.login
  order by (public.login_canonical(u.email) = k.login) is true desc, u.id
  limit 1
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
-- the token's user still exists, the token was not logged out, and it was issued after the
-- user's sessions were last revoked (scripts/users.py revoke-sessions; p_issued_at = iat).
-- PL/pgSQL, not SQL: a security definer SQL function is never inlined and its query is
-- planned again on every call (PostgreSQL 15), which cost each request ~0.1-0.3 ms of
-- Postgres CPU; PL/pgSQL keeps the plan for the connection's life.
create or replace function public.session_is_valid(p_user_id bigint, p_jti text, p_issued_at bigint)
returns boolean
language plpgsql stable security definer set search_path = public, pg_temp
as $$
begin
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
end
$$;

-- POST /api/auth/logout: the token is refused from now until it would have expired.
-- Each call also drops up to 100 revocations that have expired (bounded work per call, and
-- the table stays bounded by the tokens still valid). The audit row names the session's
-- user (X-Gateway-Session) and is written in this transaction.
create or replace function public.revoke_token(p_jti text, p_expires_at timestamptz)
returns void
-- plpgsql: audit_write() is defined by sql/expense_changes.sql, which runs after this file
language plpgsql volatile security definer set search_path = public, pg_temp
as $$
begin
  delete from public.revoked_tokens where jti in (
    select jti from public.revoked_tokens where expires_at < now()
    order by expires_at limit 100 for update skip locked);
  insert into public.revoked_tokens (jti, expires_at) values (p_jti, p_expires_at)
  on conflict (jti) do nothing;
  perform public.audit_write('auth.logout', public.request_actor_id(), null, null,
                             public.request_actor_id());
end
$$;

-- One expense in the shape of GET /api/expenses (and of "expense" in POST's response).
create or replace function public.expense_json(p_id bigint)
returns json
language sql stable security definer set search_path = public, pg_temp
as $$
  select json_build_object(
    'id', e.id, 'user_id', e.user_id, 'user_name', u.name, 'amount', trim_scale(e.amount),
    'category_id', e.category_id, 'category', c.name,
    'payment_method_id', e.payment_method_id, 'payment_method', pm.name,
    'description', e.description, 'date', e.date, 'created_at', e.created_at)
  from public.expenses e
  join public.users u on u.id = e.user_id
  join public.categories c on c.id = e.category_id
  left join public.payment_methods pm on pm.id = e.payment_method_id
  where e.id = p_id
$$;

-- POST /api/expenses -> {"replayed": bool, "expense": <expense_json>}. With an idempotency
-- key the first response is stored in the same transaction as the row: a retry with the
-- same key and body replays it (a concurrent retry waits for the first to commit), the same
-- key with another body is 409. Unknown references are 400 naming the field.
create or replace function public.create_expense(
  p_actor_id bigint, p_user_id bigint, p_category_id bigint, p_payment_method_id bigint,
  p_amount numeric, p_description text, p_date date,
  p_idempotency_key text default null, p_request_hash text default null,
  p_ttl_hours integer default 24)
returns json
language plpgsql volatile security definer set search_path = public, pg_temp
as $$
declare
  stored record;
  new_id bigint;
  result json;
begin
  if p_idempotency_key is not null then
    -- this key if it expired, and up to 20 other expired keys (bounded work per call; the
    -- table stays bounded by the keys still remembered)
    delete from public.idempotency_keys
    where user_id = p_actor_id and key = p_idempotency_key and expires_at < now();
    delete from public.idempotency_keys where (user_id, key) in (
      select user_id, key from public.idempotency_keys where expires_at < now()
      order by expires_at limit 20 for update skip locked);
    insert into public.idempotency_keys (user_id, key, request_hash, response, expires_at)
    values (p_actor_id, p_idempotency_key, p_request_hash, 'null'::json,
            now() + make_interval(hours => p_ttl_hours))
    on conflict (user_id, key) do nothing;
    if not found then
      select request_hash, response into stored from public.idempotency_keys
      where user_id = p_actor_id and key = p_idempotency_key;
      if stored.request_hash is distinct from p_request_hash then
        raise sqlstate 'PT409'
          using message = 'Idempotency-Key was already used with a different request';
      end if;
      return json_build_object('replayed', true, 'expense', stored.response);
    end if;
  end if;

  -- (null user or category: required here, reported as the unknown reference it is)
  perform public.check_expense_references(coalesce(p_user_id, 0), coalesce(p_category_id, 0),
                                          p_payment_method_id);

  -- created_by: the caller records it (who may later change it); the audit row is written
  -- by the expenses_audit trigger in this transaction.
  insert into public.expenses (user_id, category_id, payment_method_id, amount, description,
                               date, created_by)
  values (p_user_id, p_category_id, p_payment_method_id, p_amount, p_description,
          coalesce(p_date, current_date), p_actor_id)
  returning id into new_id;
  result := public.expense_json(new_id);

  if p_idempotency_key is not null then
    update public.idempotency_keys set response = result
    where user_id = p_actor_id and key = p_idempotency_key;
  end if;
  return json_build_object('replayed', false, 'expense', result);
end
$$;

-- Rate limits (login/register): counters shared by every worker, used as the storage of the
-- `limits` library's fixed-window strategy. incr returns the hits in the current window.
-- A negative amount gives hits back (a successful login); it never goes below zero, so a
-- give-back that arrives after its window ended cannot pre-credit the next one. Each call
-- also drops up to 10 counters whose window has ended (bounded work per call): made-up
-- names each leave a row, and the table stays bounded by the windows still open.
create or replace function public.rate_limit_incr(p_key text, p_expiry_seconds integer, p_amount integer default 1)
returns integer
language sql volatile security definer set search_path = public, pg_temp
as $$
  delete from public.rate_limits where key in (
    select key from public.rate_limits where expires_at < now() and key <> p_key
    order by expires_at limit 10 for update skip locked);
  insert into public.rate_limits as r (key, hits, expires_at)
  values (p_key, greatest(p_amount, 0), now() + make_interval(secs => p_expiry_seconds))
  on conflict (key) do update set
    hits = case when r.expires_at <= now() then excluded.hits
                else greatest(r.hits + p_amount, 0) end,
    expires_at = case when r.expires_at <= now() then excluded.expires_at else r.expires_at end
  returning hits
$$;

-- -> {"hits": n, "expires_at": epoch seconds} for the current window (0 hits once expired).
create or replace function public.rate_limit_get(p_key text)
returns json
language sql stable security definer set search_path = public, pg_temp
as $$
  select json_build_object(
    'hits', coalesce((select hits from public.rate_limits where key = p_key and expires_at > now()), 0),
    'expires_at', coalesce((select extract(epoch from expires_at) from public.rate_limits
                            where key = p_key and expires_at > now()), extract(epoch from now())))
$$;

create or replace function public.rate_limit_clear(p_key text default null)
returns void
language sql volatile security definer set search_path = public, pg_temp
as $$
  delete from public.rate_limits where (p_key is null or key = p_key) or expires_at < now();
$$;

-- Only the service role may call these; the pre-request hook runs for every role.
revoke execute on function public.find_login_user(text), public.register_user(text, text, text),
  public.invite_is_usable(text), public.register_user_invited(text, text, text, text),
  public.session_is_valid(bigint, text, bigint), public.revoke_token(text, timestamptz),
  public.expense_json(bigint),
  public.create_expense(bigint, bigint, bigint, bigint, numeric, text, date, text, text, integer),
  public.rate_limit_incr(text, integer, integer), public.rate_limit_get(text),
  public.rate_limit_clear(text)
  from public, anon, authenticated;
grant execute on function public.find_login_user(text), public.register_user(text, text, text),
  public.invite_is_usable(text), public.register_user_invited(text, text, text, text),
  public.session_is_valid(bigint, text, bigint), public.revoke_token(text, timestamptz),
  public.expense_json(bigint),
  public.create_expense(bigint, bigint, bigint, bigint, numeric, text, date, text, text, integer),
  public.rate_limit_incr(text, integer, integer), public.rate_limit_get(text),
  public.rate_limit_clear(text)
  to service_role;
-- The pre-request hook runs as whatever role the request's JWT names, before every request.
revoke all on function public.check_gateway_session() from public;
grant execute on function public.check_gateway_session() to anon, authenticated, service_role;

-- PostgREST's pre-request hook itself (`alter role authenticator set pgrst.db_pre_request
-- to 'public.check_gateway_session'`) is set by the bootstrap as a separate last step
-- (schema.py, PRE_REQUEST_SQL): on hosted Supabase it may be refused, and then everything
-- else must stay applied.

-- GET /api/expenses: the whole response body, built in one statement and sent by PostgREST
-- and the gateway without parsing (its type is the media type handler of
-- sql/migrations/0005_passthrough_json.sql). Keys in the contract's order (the columns of
-- `t`; row_to_json renders them compactly, strings JSON-escaped, `date` ISO whatever
-- DateStyle says, `created_at` exactly as PostgREST renders timestamptz), amounts through
-- trim_scale (400.00 -> 400), newest date first then id (string_agg keeps the order of the
-- sorted subquery, as PostgREST's own json_agg does); every filter optional; without
-- p_limit every matching row (a scalar result is not cut by PostgREST's max-rows).
-- Planned once per connection (force_generic_plan), not on every call: every filter is
-- written so that one generic plan can still use the indexes - the date bounds as a range
-- (coalesce to +-infinity), the user either as `user_id = p` or, through the branch whose
-- one-time filter `p is null` holds, all users. Measured with pgbench on the 100k data:
-- 2.4x the calls per second of a custom plan per call on a 2-day window, 1.5x on a month.
create or replace function public.list_expenses(
  p_user_id bigint default null, p_category_id bigint default null,
  p_date_from date default null, p_date_to date default null,
  p_limit integer default null, p_offset integer default 0)
returns public."application/json"
language plpgsql stable security definer set search_path = public, pg_temp
set plan_cache_mode = force_generic_plan
as $$
declare
  body text;
begin
  if p_limit is not null and p_limit < 1 or p_offset is null or p_offset < 0 then
    raise sqlstate 'PT400' using message = 'limit must be at least 1 and offset at least 0';
  end if;
  select string_agg(row_to_json(t)::text, ',') into body
  from (select e.id, e.user_id, u.name as user_name, trim_scale(e.amount) as amount,
               e.category_id, c.name as category, e.payment_method_id,
               pm.name as payment_method, e.description, e.date, e.created_at
        from (select x.* from public.expenses x where x.user_id = p_user_id
              union all
              select x.* from public.expenses x where p_user_id is null) e
        join public.users u on u.id = e.user_id
        join public.categories c on c.id = e.category_id
        left join public.payment_methods pm on pm.id = e.payment_method_id
        where (p_category_id is null or e.category_id = p_category_id)
          and e.date >= coalesce(p_date_from, '-infinity')
          and e.date <= coalesce(p_date_to, 'infinity')
        order by e.date desc, e.id desc
        limit p_limit offset p_offset) t;
  return '[' || coalesce(body, '') || ']';
end
$$;

-- POST /api/expenses: the whole 201 body {"message","id","expense"}, passed through as it is.
-- Same arguments and rules as create_expense (idempotent replays included).
create or replace function public.create_expense_response(
  p_actor_id bigint, p_user_id bigint, p_category_id bigint, p_payment_method_id bigint,
  p_amount numeric, p_description text, p_date date,
  p_idempotency_key text default null, p_request_hash text default null,
  p_ttl_hours integer default 24)
returns public."application/json"
language sql volatile security definer set search_path = public, pg_temp
as $$
  select json_build_object('message', 'Expense added successfully',
                           'id', (r -> 'expense' ->> 'id')::bigint, 'expense', r -> 'expense')::text
  from public.create_expense(p_actor_id, p_user_id, p_category_id, p_payment_method_id,
                             p_amount, p_description, p_date, p_idempotency_key,
                             p_request_hash, p_ttl_hours) as r
$$;

revoke all on function public.list_expenses(bigint, bigint, date, date, integer, integer),
  public.create_expense_response(bigint, bigint, bigint, bigint, numeric, text, date, text, text, integer)
  from public, anon, authenticated, service_role;
grant execute on function public.list_expenses(bigint, bigint, date, date, integer, integer),
  public.create_expense_response(bigint, bigint, bigint, bigint, numeric, text, date, text, text, integer)
  to service_role;
