-- Rate limits of login and registration: what the gateway (ratelimit.py) calls through
-- PostgREST with the service-role key. Repeatable (sql/README.md), idempotent.

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

-- Clears the counter p_key (every counter when null) and every expired one: the storage's
-- clear and reset (ratelimit.py; tests reset the limits between cases).
create or replace function public.rate_limit_clear(p_key text default null)
returns void
language sql volatile security definer set search_path = public, pg_temp
as $$
  delete from public.rate_limits where (p_key is null or key = p_key) or expires_at < now();
$$;

-- Only the service role may call these.
revoke execute on function public.rate_limit_incr(text, integer, integer),
  public.rate_limit_get(text),
  public.rate_limit_clear(text)
  from public, anon, authenticated;
grant execute on function public.rate_limit_incr(text, integer, integer),
  public.rate_limit_get(text),
  public.rate_limit_clear(text)
  to service_role;
