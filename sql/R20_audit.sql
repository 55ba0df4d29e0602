-- The audit trail (issue 12) and the request context its rows record. Repeatable
-- (sql/README.md), idempotent. Applied before the files whose functions write audit rows:
-- R31_auth_sessions.sql (register_user, record_login, revoke_token) and R40_expenses.sql
-- (the expenses_audit* triggers). The table public.audit_log is migration 0002's; no API
-- role may touch it (R10_roles_privileges.sql).
--
-- Who is asking: a request through the gateway is made with the service-role key and names
-- the caller's session in X-Gateway-Session ("<userId>:<jti>:<iat>", checked by the
-- pre-request hook check_gateway_session); a request made with an `authenticated` JWT
-- carries the caller in its claims. request_actor_id() reads the one that applies. The
-- gateway also passes X-Request-ID and X-Client-Address for the audit rows; what a direct
-- caller sends is stored only as far as it can be trusted (request_client_addr,
-- request_request_id).

-- ---------------------------------------------------------------------------------------
-- Request context
-- ---------------------------------------------------------------------------------------
-- One header of the current PostgREST request (lower-case name); null outside PostgREST.
create or replace function public.request_header(p_name text)
returns text
language sql stable
as $$
  select nullif(current_setting('request.headers', true), '')::json ->> p_name
$$;

-- The member making the current request: the session the gateway names (service role
-- only: nobody else can be trusted to name one), else the `authenticated` JWT's userId;
-- null for the SQL editor, scripts and anonymous requests.
create or replace function public.request_actor_id()
returns bigint
language sql stable
as $$
  select case
    when nullif(current_setting('request.jwt.claims', true), '')::json ->> 'role' = 'service_role'
    then case when split_part(public.request_header('x-gateway-session'), ':', 1) ~ '^[0-9]{1,18}$'
              then split_part(public.request_header('x-gateway-session'), ':', 1)::bigint end
    else public.request_user_id()
  end
$$;

-- ---------------------------------------------------------------------------------------
-- request_client_addr() -> the end user's address as somebody trusted vouches for it, or
-- null: the gateway's X-Client-Address on a service-role request (the gateway decided it
-- behind TRUSTED_PROXY_HOPS; nobody without the service-role key can send one that
-- counts); for any other caller the RIGHT-most X-Forwarded-For entry, the one the proxy in
-- front of PostgREST appended (Supabase's API gateway, nginx's $proxy_add_x_forwarded_for)
-- - whatever a client puts in the header itself stays left of it. Only an IP address.
-- ---------------------------------------------------------------------------------------
create or replace function public.request_client_addr()
returns text
language plpgsql stable
as $$
declare
  claimed text := case
    when nullif(current_setting('request.jwt.claims', true), '')::json ->> 'role' = 'service_role'
    then public.request_header('x-client-address')
    else trim(regexp_replace(public.request_header('x-forwarded-for'), '^.*,', ''))
  end;
begin
  return host(claimed::inet);
exception when invalid_text_representation then
  return null;
end
$$;

-- request_request_id() -> X-Request-ID when it has the gateway's own format (1-128 of
-- letters, digits, `.`, `_`, `-`: edge.REQUEST_ID_RE, which the gateway sends), else null.
create or replace function public.request_request_id()
returns text
language sql stable
as $$
  select id from (select public.request_header('x-request-id')) as h (id)
  where id ~ '^[A-Za-z0-9._-]{1,128}$'
$$;

-- ---------------------------------------------------------------------------------------
-- audit_write(action, target, before, after, actor)
-- Produces: one row of public.audit_log, in the caller's transaction, with the request's
--   id and the end user's address (request_request_id, request_client_addr above).
-- Called by: the expenses_audit trigger (updates), register_user, revoke_token, record_login.
-- ---------------------------------------------------------------------------------------
create or replace function public.audit_write(
  p_action text, p_target_id bigint, p_before jsonb, p_after jsonb, p_actor_id bigint)
returns void
language sql volatile security definer set search_path = public, pg_temp
as $$
  insert into public.audit_log (actor_id, action, target_id, request_id, client_addr, before, after)
  values (p_actor_id, p_action, p_target_id, public.request_request_id(),
          public.request_client_addr(), p_before, p_after);
$$;

-- ---------------------------------------------------------------------------------------
-- audit_context() -> (actor_id, request_id, client_addr): what audit_write records about the
--   request, read once. For the writers that add many audit rows in one statement (the
--   expenses_audit_insert/_delete statement triggers, materialize_recurring): evaluated per
--   row, request_client_addr's exception block alone is a subtransaction per row.
-- ---------------------------------------------------------------------------------------
create or replace function public.audit_context(
  out actor_id bigint, out request_id text, out client_addr text)
returns record
language sql stable
as $$
  select public.request_actor_id(), public.request_request_id(), public.request_client_addr()
$$;

-- ---------------------------------------------------------------------------------------
-- prune_audit_log(days) -> rows deleted: retention (AUDIT_RETENTION_DAYS). No API role may
-- run it; the app's start-up and scripts/audit.py --prune run it as the owner over
-- DATABASE_URL.
-- ---------------------------------------------------------------------------------------
create or replace function public.prune_audit_log(p_retention_days integer)
returns bigint
language plpgsql volatile
as $$
declare
  deleted bigint;
begin
  if p_retention_days is null or p_retention_days < 1 then
    raise exception 'retention must be at least 1 day, got %', p_retention_days;
  end if;
  delete from public.audit_log
   where occurred_at < now() - make_interval(days => p_retention_days);
  get diagnostics deleted = row_count;
  return deleted;
end
$$;

-- Nobody but the owner runs these directly: they run inside the SECURITY DEFINER
-- functions and triggers that call them (prune_audit_log: the owner, over DATABASE_URL).
revoke all on function public.request_header(text), public.request_actor_id(),
  public.request_client_addr(), public.request_request_id(),
  public.audit_write(text, bigint, jsonb, jsonb, bigint), public.audit_context(),
  public.prune_audit_log(integer)
  from public, anon, authenticated, service_role;
