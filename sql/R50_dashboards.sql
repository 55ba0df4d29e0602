-- Dashboards: the per user / month / category totals, kept exact by a trigger on expenses,
-- the two dashboard RPCs that read them, and the NOTIFY that empties the gateway's
-- dashboard cache. Repeatable (sql/README.md): re-applied by the bootstrap (the app at
-- start-up under an advisory lock, and scripts/bootstrap_schema.py); safe to run any number
-- of times against the local stack or a hosted Supabase project (PostgreSQL 15).
--
-- Contents
--   expense_totals_insert/_update/_delete()  statement triggers: keep expense_monthly_totals exact
--   expense_totals_truncate()        trigger: empties it when expenses is truncated
--   rebuild_expense_monthly_totals() back-fill / repair of the totals table
--   expense_totals_drift()           raw sums vs the totals table (bootstrap --check)
--   dashboard_categories(...)        total, top 5 and breakdown shared by both dashboards
--   dashboard_user(...)              argument checks and the user's name
--   get_monthly_dashboard(...)       JSON of GET /api/dashboard/{user_id}/monthly
--   get_yearly_dashboard(...)        JSON of GET /api/dashboard/{user_id}/yearly
--   notify_dashboard_cache()         trigger: NOTIFY ffb_cache for the dashboard cache
-- All of them are SECURITY DEFINER with a pinned search_path, and only service_role may
-- execute them (the API calls the dashboards with the service-role client).

-- ---------------------------------------------------------------------------------------
-- expense_totals_insert(), expense_totals_update(), expense_totals_delete()
-- Produce: no response; keep public.expense_monthly_totals(user_id, month, category_id,
--   amount, expense_count) equal to the raw sums over public.expenses.
-- Called by: the triggers expenses_totals_insert / _update / _delete (AFTER ... FOR EACH
--   STATEMENT on public.expenses, the statement's rows as transition tables), i.e. on every
--   write whatever its path: POST /api/expenses, PostgREST with an `authenticated` JWT
--   (which has no grant on the totals table, hence SECURITY DEFINER), the SQL editor,
--   COPY, import, recurring, the cascade of `delete from users`. Once per statement, with
--   the statement's rows summed per (user, month, category): a bulk insert of 10,000 rows
--   into 400 buckets writes 400 totals rows, not 10,000 upserts (issue 23; releases before
--   it had one row trigger, expenses_totals_sync, which this file drops).
-- Concurrency: every statement takes the totals rows it changes in key order (the upsert's
--   input and the row locks below are sorted), so two statements touching the same buckets
--   in opposite orders wait for each other instead of deadlocking.
-- ---------------------------------------------------------------------------------------
create or replace function public.expense_totals_insert()
returns trigger
language plpgsql
security definer
set search_path = public, pg_temp
as $$
begin
  -- an upsert, exact under concurrency
  insert into public.expense_monthly_totals as t
         (user_id, month, category_id, amount, expense_count)
  select n.user_id, date_trunc('month', n.date::timestamp)::date, n.category_id,
         sum(n.amount), count(*)
    from new_rows n
   group by 1, 2, 3
   order by 1, 2, 3
  on conflict (user_id, month, category_id) do update
    set amount = t.amount + excluded.amount,
        expense_count = t.expense_count + excluded.expense_count;
  return null;                                         -- AFTER trigger: value ignored
end
$$;

-- The old side (a DELETE's rows) comes off with UPDATE only, never INSERT: during
-- `delete from users` the cascade may already have removed the totals rows (and the user),
-- and then there is nothing left to correct. A bucket left with no expense goes.
create or replace function public.expense_totals_delete()
returns trigger
language plpgsql
security definer
set search_path = public, pg_temp
as $$
begin
  perform 1
     from public.expense_monthly_totals t
    where (t.user_id, t.month, t.category_id) in
          (select o.user_id, date_trunc('month', o.date::timestamp)::date, o.category_id
             from old_rows o)
    order by t.user_id, t.month, t.category_id
      for update;
  update public.expense_monthly_totals t
     set amount = t.amount - g.amount,
         expense_count = t.expense_count - g.expense_count
    from (select o.user_id, date_trunc('month', o.date::timestamp)::date as month,
                 o.category_id, sum(o.amount) as amount, count(*) as expense_count
            from old_rows o
           group by 1, 2, 3) g
   where t.user_id = g.user_id and t.month = g.month and t.category_id = g.category_id;
  -- the row locks taken above are still held: nobody changed these rows since
  delete from public.expense_monthly_totals t
   where t.expense_count <= 0
     and (t.user_id, t.month, t.category_id) in
         (select o.user_id, date_trunc('month', o.date::timestamp)::date, o.category_id
            from old_rows o);
  return null;
end
$$;

-- An UPDATE moves each row's amount from its old bucket to its new one: per bucket, what
-- the new images add less what the old ones took. Buckets it does not change (an update
-- of the description, the cascade's `created_by = null`) are not touched. A bucket left
-- with no expense goes.
create or replace function public.expense_totals_update()
returns trigger
language plpgsql
security definer
set search_path = public, pg_temp
as $$
begin
  insert into public.expense_monthly_totals as t
         (user_id, month, category_id, amount, expense_count)
  select user_id, month, category_id, sum(amount), sum(expense_count)
    from (select n.user_id, date_trunc('month', n.date::timestamp)::date as month,
                 n.category_id, n.amount, 1 as expense_count
            from new_rows n
          union all
          select o.user_id, date_trunc('month', o.date::timestamp)::date, o.category_id,
                 -o.amount, -1
            from old_rows o) moves
   group by 1, 2, 3
  having sum(amount) <> 0 or sum(expense_count) <> 0
   order by 1, 2, 3
  on conflict (user_id, month, category_id) do update
    set amount = t.amount + excluded.amount,
        expense_count = t.expense_count + excluded.expense_count;
  delete from public.expense_monthly_totals t
   where t.expense_count <= 0
     and (t.user_id, t.month, t.category_id) in
         (select o.user_id, date_trunc('month', o.date::timestamp)::date, o.category_id
            from old_rows o);
  return null;
end
$$;

-- ---------------------------------------------------------------------------------------
-- expense_totals_truncate()
-- Produces: no response; empties the totals table when public.expenses is truncated
--   (row triggers do not fire on TRUNCATE).
-- Called by: trigger expenses_totals_truncate (AFTER TRUNCATE ... FOR EACH STATEMENT).
-- ---------------------------------------------------------------------------------------
create or replace function public.expense_totals_truncate()
returns trigger
language plpgsql
security definer
set search_path = public, pg_temp
as $$
begin
  delete from public.expense_monthly_totals;
  return null;
end
$$;

-- ---------------------------------------------------------------------------------------
-- rebuild_expense_monthly_totals()
-- Produces: integer, the number of totals rows written.
-- Called by: the schema bootstrap (back-fill and repair of drift), this file when it
--   (re)installs the trigger, and scripts/seed_demo.py. No HTTP endpoint.
-- Concurrent writers are safe: every write to expenses goes through the trigger, which
-- needs a ROW EXCLUSIVE lock on the totals table; the EXCLUSIVE lock taken here waits for
-- writers already in flight and holds back new ones until this transaction ends.
-- ---------------------------------------------------------------------------------------
create or replace function public.rebuild_expense_monthly_totals()
returns integer
language plpgsql
volatile
security definer
set search_path = public, pg_temp
as $$
declare
  v_rows integer;
begin
  lock table public.expense_monthly_totals in exclusive mode;
  delete from public.expense_monthly_totals;
  insert into public.expense_monthly_totals (user_id, month, category_id, amount, expense_count)
  select e.user_id, date_trunc('month', e.date::timestamp)::date, e.category_id,
         sum(e.amount), count(*)
    from public.expenses e
   group by 1, 2, 3;
  get diagnostics v_rows = row_count;
  return v_rows;
end
$$;

-- ---------------------------------------------------------------------------------------
-- expense_totals_drift()
-- Produces: table(user_id, month, category_id, expected, actual): every (user, month,
--   category) whose raw sum over expenses (expected) differs from the totals table
--   (actual), a bucket missing on either side included (its amount shows as null). A
--   bucket whose amounts agree but whose expense_count does not is listed too, since the
--   count decides when a bucket is removed. Empty means no drift.
-- Called by: the schema bootstrap `--check`, the tests, scripts/seed_demo.py. No endpoint.
-- ---------------------------------------------------------------------------------------
create or replace function public.expense_totals_drift()
returns table (user_id bigint, month date, category_id bigint, expected numeric, actual numeric)
language sql
stable
security definer
set search_path = public, pg_temp
as $$
  with raw as (
    select e.user_id, date_trunc('month', e.date::timestamp)::date as month, e.category_id,
           sum(e.amount) as amount, count(*) as expense_count
      from public.expenses e
     group by 1, 2, 3
  )
  select coalesce(r.user_id, t.user_id), coalesce(r.month, t.month),
         coalesce(r.category_id, t.category_id), r.amount, t.amount
    from raw r
    full join public.expense_monthly_totals t
      on t.user_id = r.user_id and t.month = r.month and t.category_id = r.category_id
   where r.amount is distinct from t.amount
      or r.expense_count is distinct from t.expense_count
   order by 1, 2, 3
$$;

-- ---------------------------------------------------------------------------------------
-- Triggers on public.expenses. Only (re)created when missing or different, so an ordinary
-- start-up takes no lock on expenses. When a trigger had to be installed or re-enabled the
-- totals may be stale (rows written without it), so they are rebuilt in the same statement.
-- ---------------------------------------------------------------------------------------
do $$
declare
  v_rebuild boolean := false;
  v_exact boolean;
  v_trigger record;
begin
  -- Releases before issue 23's bulk work kept the totals with one row trigger. While it was
  -- installed and enabled the totals were exact, and it goes in this transaction, in which
  -- no write can slip between it and its replacements (CREATE TRIGGER locks out writers).
  v_exact := exists (select 1 from pg_trigger
                      where tgrelid = 'public.expenses'::regclass
                        and tgname = 'expenses_totals_sync' and tgenabled <> 'D');
  drop trigger if exists expenses_totals_sync on public.expenses;

  -- tgtype: AFTER statement triggers (no ROW, no BEFORE bit), INSERT 4, DELETE 8, UPDATE 16.
  for v_trigger in
    select * from (values
      ('expenses_totals_insert', 'public.expense_totals_insert()'::regprocedure, 4,
       null::name, 'new_rows'::name),
      ('expenses_totals_update', 'public.expense_totals_update()'::regprocedure, 16,
       'old_rows', 'new_rows'),
      ('expenses_totals_delete', 'public.expense_totals_delete()'::regprocedure, 8,
       'old_rows', null)) as x (name, func, type, old_table, new_table)
  loop
    if not exists (
      select 1 from pg_trigger
       where tgrelid = 'public.expenses'::regclass and tgname = v_trigger.name
         and tgfoid = v_trigger.func and tgtype = v_trigger.type and tgnargs = 0
         and tgqual is null and tgattr::text = ''
         and tgoldtable is not distinct from v_trigger.old_table
         and tgnewtable is not distinct from v_trigger.new_table
    ) then
      execute format('create or replace trigger %I after %s on public.expenses '
                     'referencing %s for each statement execute function %s',
                     v_trigger.name,
                     case v_trigger.type when 4 then 'insert' when 16 then 'update'
                                         else 'delete' end,
                     concat_ws(' ', 'old table as ' || v_trigger.old_table,
                                    'new table as ' || v_trigger.new_table),
                     v_trigger.func);
      v_rebuild := true;
    end if;
    -- A trigger left disabled (e.g. by a bulk load that was committed that way) means drift.
    if exists (select 1 from pg_trigger
                where tgrelid = 'public.expenses'::regclass
                  and tgname = v_trigger.name and tgenabled = 'D') then
      execute format('alter table public.expenses enable trigger %I', v_trigger.name);
      v_rebuild := true;
      v_exact := false;
    end if;
  end loop;

  -- tgtype 32 = TRUNCATE, statement level, AFTER.
  if not exists (
    select 1 from pg_trigger
     where tgrelid = 'public.expenses'::regclass and tgname = 'expenses_totals_truncate'
       and tgfoid = 'public.expense_totals_truncate()'::regprocedure
       and tgtype = 32 and tgnargs = 0
  ) then
    create or replace trigger expenses_totals_truncate
      after truncate on public.expenses
      for each statement execute function public.expense_totals_truncate();
  end if;
  if exists (select 1 from pg_trigger
              where tgrelid = 'public.expenses'::regclass
                and tgname = 'expenses_totals_truncate' and tgenabled = 'D') then
    alter table public.expenses enable trigger expenses_totals_truncate;
  end if;

  -- Installed or re-enabled: rows may have been written without them, so the totals are
  -- rebuilt in the same statement (not when they only replace an enabled row trigger).
  if v_rebuild and not v_exact then
    perform public.rebuild_expense_monthly_totals();
  end if;
end
$$;

-- ---------------------------------------------------------------------------------------
-- dashboard_categories(p_user_id, p_from, p_to)
-- Produces: the category part shared by both dashboards, for the months in [p_from, p_to):
--   total (numeric), top (json: first 5 of breakdown), breakdown (json: every category with
--   spending, amount descending, ties by name; [] when nothing was spent), each item
--   {"category","amount","percentage"} with amounts to 2 decimals and percentages to 1,
--   integers staying integers (trim_scale).
-- Called by: get_monthly_dashboard and get_yearly_dashboard (below). No endpoint.
-- ---------------------------------------------------------------------------------------
create or replace function public.dashboard_categories(
  p_user_id bigint, p_from date, p_to date,
  out total numeric, out top json, out breakdown json)
language sql
stable
security definer
set search_path = public, pg_temp
as $$
  with cats as (
    select c.name as category, sum(t.amount) as amount
      from public.expense_monthly_totals t
      join public.categories c on c.id = t.category_id
     where t.user_id = p_user_id and t.month >= p_from and t.month < p_to
     group by c.id, c.name
    having sum(t.amount) <> 0
  ),
  total as (
    select coalesce(sum(amount), 0) as total from cats
  ),
  items as (
    select json_build_object(
             'category', cats.category,
             'amount', trim_scale(round(cats.amount, 2)),
             'percentage', trim_scale(round(cats.amount / nullif(total.total, 0) * 100, 1)))
             as item,
           row_number() over (order by cats.amount desc, cats.category collate "C") as rn
      from cats cross join total
  )
  select (select total from total),
         coalesce(json_agg(i.item order by i.rn) filter (where i.rn <= 5), '[]'::json),
         coalesce(json_agg(i.item order by i.rn), '[]'::json)
    from items i
$$;

-- ---------------------------------------------------------------------------------------
-- dashboard_user(p_user_id, p_year, p_month, p_monthly)
-- Produces: the name of the user a dashboard is for, or NULL when there is no such user;
--   raises 22023 (PostgREST: 400) for a missing argument, a month outside 1-12 (monthly
--   only) or a year outside 1-9999.
-- Called by: get_monthly_dashboard and get_yearly_dashboard (below). No endpoint.
-- ---------------------------------------------------------------------------------------
create or replace function public.dashboard_user(
  p_user_id bigint, p_year int, p_month int, p_monthly boolean)
returns text
language plpgsql
stable
security definer
set search_path = public, pg_temp
as $$
declare
  v_name text;
begin
  if p_user_id is null or p_year is null or (p_monthly and p_month is null) then
    raise exception '%', case when p_monthly then 'user id, year and month are required'
                              else 'user id and year are required' end
      using errcode = '22023';
  end if;
  if p_monthly and (p_month < 1 or p_month > 12) then
    raise exception 'month must be between 1 and 12, got %', p_month using errcode = '22023';
  end if;
  if p_year < 1 or p_year > 9999 then
    raise exception 'year must be between 1 and 9999, got %', p_year using errcode = '22023';
  end if;
  select u.name into v_name from public.users u where u.id = p_user_id;
  return v_name;
end
$$;

-- ---------------------------------------------------------------------------------------
-- get_monthly_dashboard(p_user_id, p_year, p_month)
-- Produces: the complete JSON body of GET /api/dashboard/{user_id}/monthly?year&month:
--   {"user":{"id","name"},"period":{"type":"monthly","year","month"},"total_spent",
--    "top_categories":[{"category","amount","percentage"}] (first 5),
--    "category_breakdown":[...every category with spending...]}
--   or NULL when the user does not exist (the API answers 404 "User not found").
-- Called by: routers (dashboard) through PostgREST RPC with the service-role client.
-- Reads at most n_categories rows of the totals table (primary key lookup).
-- ---------------------------------------------------------------------------------------
create or replace function public.get_monthly_dashboard(p_user_id bigint, p_year int, p_month int)
returns json
language plpgsql
stable
security definer
set search_path = public, pg_temp
as $$
declare
  v_name  text;
  v_month date;
  v_total numeric;
  v_top   json;
  v_all   json;
begin
  perform public.require_gateway_session();
  v_name := public.dashboard_user(p_user_id, p_year, p_month, true);
  if v_name is null then
    return null;
  end if;

  v_month := make_date(p_year, p_month, 1);
  select d.total, d.top, d.breakdown into v_total, v_top, v_all
    from public.dashboard_categories(p_user_id, v_month, (v_month + interval '1 month')::date) d;

  return json_build_object(
    'user', json_build_object('id', p_user_id, 'name', v_name),
    'period', json_build_object('type', 'monthly', 'year', p_year, 'month', p_month),
    'total_spent', trim_scale(round(coalesce(v_total, 0), 2)),
    'top_categories', v_top,
    'category_breakdown', v_all);
end
$$;

-- ---------------------------------------------------------------------------------------
-- get_yearly_dashboard(p_user_id, p_year)
-- Produces: the complete JSON body of GET /api/dashboard/{user_id}/yearly?year:
--   {"user":{"id","name"},"period":{"type":"yearly","year"},"total_spent",
--    "top_categories":[...first 5...],"category_breakdown":[...],
--    "monthly_trends":[{"month":1,"month_name":"January","amount"}, ... all 12 ...]}
--   or NULL when the user does not exist (the API answers 404 "User not found").
-- Called by: routers (dashboard) through PostgREST RPC with the service-role client.
-- Reads at most 12 x n_categories rows of the totals table (primary key range scan).
-- ---------------------------------------------------------------------------------------
create or replace function public.get_yearly_dashboard(p_user_id bigint, p_year int)
returns json
language plpgsql
stable
security definer
set search_path = public, pg_temp
as $$
declare
  -- Fixed English names: independent of lc_time and of to_char's locale handling.
  c_month_names constant text[] := array['January', 'February', 'March', 'April', 'May',
    'June', 'July', 'August', 'September', 'October', 'November', 'December'];
  v_name   text;
  v_from   date;
  v_total  numeric;
  v_top    json;
  v_all    json;
  v_trends json;
begin
  perform public.require_gateway_session();
  v_name := public.dashboard_user(p_user_id, p_year, null, false);
  if v_name is null then
    return null;
  end if;

  v_from := make_date(p_year, 1, 1);
  select d.total, d.top, d.breakdown into v_total, v_top, v_all
    from public.dashboard_categories(p_user_id, v_from, (v_from + interval '1 year')::date) d;

  select json_agg(json_build_object(
           'month', m.month,
           'month_name', c_month_names[m.month],
           'amount', trim_scale(round(m.amount, 2)))
         order by m.month)
    into v_trends
    from (select g.month, coalesce(sum(t.amount), 0) as amount
            from generate_series(1, 12) as g(month)
            left join public.expense_monthly_totals t
              on t.user_id = p_user_id and t.month = make_date(p_year, g.month, 1)
           group by g.month) m;

  return json_build_object(
    'user', json_build_object('id', p_user_id, 'name', v_name),
    'period', json_build_object('type', 'yearly', 'year', p_year),
    'total_spent', trim_scale(round(coalesce(v_total, 0), 2)),
    'top_categories', v_top,
    'category_breakdown', v_all,
    'monthly_trends', v_trends);
end
$$;

-- ---------------------------------------------------------------------------------------
-- dashboard_users()
-- Produces: the body of GET /api/dashboard/users: every member [{"id","name","email"}] by id
--   ([] when there is none), for a valid session only (require_gateway_session).
-- Called by: routers (dashboard) through PostgREST RPC with the service-role client.
-- ---------------------------------------------------------------------------------------
create or replace function public.dashboard_users()
returns json
language plpgsql
stable
security definer
set search_path = public, pg_temp
as $$
begin
  perform public.require_gateway_session();
  return (select coalesce(json_agg(json_build_object('id', u.id, 'name', u.name,
                                                     'email', u.email) order by u.id),
                          '[]'::json)
          from public.users u);
end
$$;

-- ---------------------------------------------------------------------------------------
-- Privileges. Functions are executable by PUBLIC by default, and hosted Supabase's default
-- privileges also grant anon and authenticated explicitly, so revoke from all three.
-- Trigger functions need no EXECUTE grant to fire; nobody gets one.
-- ---------------------------------------------------------------------------------------
revoke all on function public.expense_totals_insert(), public.expense_totals_update(),
  public.expense_totals_delete() from public, anon, authenticated, service_role;
revoke all on function public.expense_totals_truncate() from public, anon, authenticated, service_role;

revoke all on function public.rebuild_expense_monthly_totals() from public, anon, authenticated;
revoke all on function public.expense_totals_drift() from public, anon, authenticated;
revoke all on function public.dashboard_categories(bigint, date, date) from public, anon, authenticated;
revoke all on function public.dashboard_user(bigint, int, int, boolean) from public, anon, authenticated;
revoke all on function public.get_monthly_dashboard(bigint, int, int) from public, anon, authenticated;
revoke all on function public.get_yearly_dashboard(bigint, int) from public, anon, authenticated;
revoke all on function public.dashboard_users() from public, anon, authenticated;

grant execute on function public.rebuild_expense_monthly_totals() to service_role;
grant execute on function public.expense_totals_drift() to service_role;
grant execute on function public.dashboard_categories(bigint, date, date) to service_role;
grant execute on function public.get_monthly_dashboard(bigint, int, int) to service_role;
grant execute on function public.get_yearly_dashboard(bigint, int) to service_role;
grant execute on function public.dashboard_users() to service_role;

-- notify_dashboard_cache(): trigger function, the invalidation of the gateway's per-worker
--   dashboard cache (dashboard_cache.py, DASHBOARD_CACHE). Any statement that writes
--   expenses (hence the totals the dashboards read), users (names, deletions), categories
--   (names), revoked_tokens (logouts: a cached body must not outlive its session) or the
--   revocation of a session (sessions.revoked_at) sends
--   `NOTIFY ffb_cache`; each worker LISTENs on its own connection and empties its cache.
--   Statement-level: a COPY of 100k rows sends one notification, and Postgres folds
--   identical notifications of one transaction into one, delivered at commit.
-- Called by: the *_cache_notify triggers below. No grants (trigger functions need none).
create or replace function public.notify_dashboard_cache()
returns trigger
language plpgsql security definer set search_path = public, pg_temp
as $$
begin
  perform pg_notify('ffb_cache', tg_table_name);
  return null;
end
$$;

create or replace trigger expenses_cache_notify
  after insert or update or delete or truncate on public.expenses
  for each statement execute function public.notify_dashboard_cache();
create or replace trigger users_cache_notify
  after insert or update or delete or truncate on public.users
  for each statement execute function public.notify_dashboard_cache();
create or replace trigger categories_cache_notify
  after insert or update or delete or truncate on public.categories
  for each statement execute function public.notify_dashboard_cache();
-- revoked_tokens: only a logout matters (pruning expired rows does not), and a statement
-- trigger would fire for the prune that runs on every logout even when it deletes nothing.
create or replace trigger revoked_tokens_cache_notify
  after insert on public.revoked_tokens
  for each statement execute function public.notify_dashboard_cache();
-- sessions (issue 22): a revoked session (DELETE /api/auth/sessions, a reused refresh
-- token, a password change) must not be answered from the cache either.
create or replace trigger sessions_cache_notify
  after update of revoked_at on public.sessions
  for each statement execute function public.notify_dashboard_cache();

revoke all on function public.notify_dashboard_cache() from public, anon, authenticated, service_role;
