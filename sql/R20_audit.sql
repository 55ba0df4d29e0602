-- The audit trail (issue 12) and the request context its rows record. Repeatable
-- (sql/README.md), idempotent. Applied before the files whose functions write audit rows:
-- R31_auth_sessions.sql (register_user, record_login, revoke_token) and R40_expenses.sql
-- (the expenses_audit trigger). The table public.audit_log is migration 0002's; no API
-- role may touch it (R10_roles_privileges.sql).
--
-- Who is asking: a request through the gateway is made with the service-role key and names
-- the caller's session in X-Gateway-Session ("<userId>:<jti>:<iat>", checked by the
-- pre-request hook check_gateway_session); a request made with an `authenticated` JWT
-- carries the caller in its claims. request_actor_id() reads the one that applies. The
-- gateway also passes X-Request-ID and X-Client-Address for the audit rows.

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
-- audit_write(action, target, before, after, actor)
-- Produces: one row of public.audit_log, in the caller's transaction, with the request's
--   id and the end user's address (as the gateway reports them; for other callers the
--   first X-Forwarded-For hop).
-- Called by: the expenses_audit trigger, register_user, revoke_token, record_login.
-- ---------------------------------------------------------------------------------------
create or replace function public.audit_write(
  p_action text, p_target_id bigint, p_before jsonb, p_after jsonb, p_actor_id bigint)
returns void
language sql volatile security definer set search_path = public, pg_temp
as $$
  insert into public.audit_log (actor_id, action, target_id, request_id, client_addr, before, after)
  values (p_actor_id, p_action, p_target_id,
          left(public.request_header('x-request-id'), 128),
          left(case
                 when nullif(current_setting('request.jwt.claims', true), '')::json ->> 'role'
                      = 'service_role'
                 then public.request_header('x-client-address')
                 else nullif(trim(split_part(public.request_header('x-forwarded-for'), ',', 1)), '')
               end, 64),
          p_before, p_after);
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
  public.audit_write(text, bigint, jsonb, jsonb, bigint), public.prune_audit_log(integer)
  from public, anon, authenticated, service_role;
