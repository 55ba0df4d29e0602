-- Roles (issue 22): who may do what, decided by Postgres in the transaction of the change.
-- Repeatable (sql/README.md), idempotent; applied after R20_audit.sql (request_actor_id)
-- and before every file whose functions change data. users.role is migration 0008's:
--   admin   everything a member may, plus /api/admin/* (members, reset codes, invites)
--   member  the legacy behaviour: reads and writes the family's data
--   viewer  reads what a member reads; every write is refused (403) with nothing changed
-- Other domains (budgets, recurring, import ...) call public.require_write_access() first
-- in each function that changes data, and may read public.request_role().

-- ---------------------------------------------------------------------------------------
-- request_role() -> 'admin' | 'member' | 'viewer', or null without a known caller (the SQL
-- editor, scripts, anonymous requests). The caller is public.request_actor_id(): the
-- session the gateway names (X-Gateway-Session), else an `authenticated` JWT's userId.
-- ---------------------------------------------------------------------------------------
create or replace function public.request_role()
returns text
language plpgsql stable security definer set search_path = public, pg_temp
as $$
declare
  actor bigint := public.request_actor_id();
begin
  if actor is null then
    return null;
  end if;
  return (select role from public.users where id = actor);
end
$$;

-- ---------------------------------------------------------------------------------------
-- require_write_access(): raises 403 when the caller is a viewer. Called first by every
-- function that changes the family's data, and by the expenses_writers_only trigger (so a
-- write through any path, the gateway's RPCs or PostgREST with an `authenticated` JWT,
-- is refused in its own transaction: nothing of it stays).
-- ---------------------------------------------------------------------------------------
create or replace function public.require_write_access()
returns void
language plpgsql stable security definer set search_path = public, pg_temp
as $$
begin
  if public.request_role() = 'viewer' then
    raise sqlstate 'PT403' using message = 'Viewers can read but not change anything';
  end if;
end
$$;

-- require_admin(): raises 403 unless the caller is an admin. Called first by every
-- /api/admin/* function (R32_accounts.sql).
create or replace function public.require_admin()
returns void
language plpgsql stable security definer set search_path = public, pg_temp
as $$
begin
  if public.request_role() is distinct from 'admin' then
    raise sqlstate 'PT403' using message = 'Admins only';
  end if;
end
$$;

-- Every statement that inserts, updates or deletes expenses, whatever calls it.
create or replace function public.expenses_writers_only()
returns trigger
language plpgsql security definer set search_path = public, pg_temp
as $$
begin
  perform public.require_write_access();
  return null;
end
$$;

drop trigger if exists expenses_writers_only on public.expenses;
create trigger expenses_writers_only
  before insert or update or delete on public.expenses
  for each statement execute function public.expenses_writers_only();

-- No API role calls these directly: they run inside SECURITY DEFINER functions and
-- triggers, as their owner (a trigger function's EXECUTE is checked when the trigger is
-- created, not when it fires).
revoke all on function public.request_role(), public.require_write_access(),
  public.require_admin(), public.expenses_writers_only()
  from public, anon, authenticated, service_role;
