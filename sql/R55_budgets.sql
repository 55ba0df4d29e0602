-- Budgets (issue 23): PUT /api/budgets and GET /api/budgets, which the gateway calls
-- through PostgREST with the service-role key. Repeatable (sql/README.md), idempotent;
-- applied after R50_dashboards.sql, whose trigger keeps expense_monthly_totals exact.
-- A budget is family-wide, per category, and holds from its month on until a later row of
-- the same category (amount 0 ends it). "Spent" is read from expense_monthly_totals, which
-- the totals trigger keeps exact for every writer (API, PostgREST, SQL, import, recurring),
-- so a status costs O(categories x members), never O(expenses).

-- ---------------------------------------------------------------------------------------
-- set_budget(actor, category, month, amount) -> the 200 body of PUT /api/budgets:
-- {"message","category_id","category","month":"YYYY-MM","amount"}. 400 naming an unknown
-- category; the change and its audit row ("budget.set", target = the category) in one
-- transaction.
-- ---------------------------------------------------------------------------------------
create or replace function public.set_budget(
  p_actor_id bigint, p_category_id bigint, p_month date, p_amount numeric)
returns public."application/json"
language plpgsql volatile security definer set search_path = public, pg_temp
as $$
declare
  before_row public.budgets;
  after_row public.budgets;
  category_name text;
begin
  perform public.require_gateway_session();
  perform public.require_write_access();  -- a viewer changes nothing (R21_access_roles.sql)
  select name into category_name from public.categories where id = p_category_id;
  if not found then
    raise sqlstate 'PT400' using message = 'Invalid category_id: category does not exist';
  end if;
  select * into before_row from public.budgets
  where category_id = p_category_id and month = date_trunc('month', p_month)::date for update;
  insert into public.budgets as b (category_id, month, amount, updated_by)
  values (p_category_id, date_trunc('month', p_month)::date, p_amount, p_actor_id)
  on conflict (category_id, month) do update
    set amount = excluded.amount, updated_by = excluded.updated_by, updated_at = now()
  returning * into after_row;
  perform public.audit_write('budget.set', p_category_id,
                             case when before_row.category_id is null then null
                                  else to_jsonb(before_row) end,
                             to_jsonb(after_row), p_actor_id);
  return json_build_object('message', 'Budget saved', 'category_id', p_category_id,
                           'category', category_name, 'month', to_char(after_row.month, 'YYYY-MM'),
                           'amount', trim_scale(after_row.amount))::text;
end
$$;

-- ---------------------------------------------------------------------------------------
-- budget_status(year, month) -> the body of GET /api/budgets: one entry per category with
-- a budget or spending that month, by category name:
--   {"category_id","category","budget","spent","remaining","percentage","over"}
-- amounts as the dashboards render them (2 decimals, integers stay integers), percentage
-- of the budget spent to 1 decimal; budget, remaining and percentage are null for a
-- category with spending but no budget. Spent is the whole family's.
-- ---------------------------------------------------------------------------------------
create or replace function public.budget_status(p_year integer, p_month integer)
returns public."application/json"
language plpgsql stable security definer set search_path = public, pg_temp
as $$
declare
  first_day date;
  body text;
begin
  perform public.require_gateway_session();
  if p_year is null or p_month is null or p_year not between 1900 and 2200
     or p_month not between 1 and 12 then
    raise sqlstate 'PT400' using message = 'year must be 1900-2200 and month 1-12';
  end if;
  first_day := make_date(p_year, p_month, 1);
  with budget as (
    select distinct on (b.category_id) b.category_id, b.amount
    from public.budgets b
    where b.month <= first_day
    order by b.category_id, b.month desc
  ), spent as (
    select t.category_id, sum(t.amount) as amount
    from public.expense_monthly_totals t
    where t.month = first_day
    group by t.category_id
    having sum(t.expense_count) > 0
  ), entry as (
    select c.id, c.name, nullif(b.amount, 0) as budget, coalesce(s.amount, 0) as spent
    from public.categories c
    left join budget b on b.category_id = c.id
    left join spent s on s.category_id = c.id
    where b.amount > 0 or s.amount is not null
  )
  select string_agg(json_build_object(
           'category_id', e.id, 'category', e.name,
           'budget', trim_scale(round(e.budget, 2)),
           'spent', trim_scale(round(e.spent, 2)),
           'remaining', trim_scale(round(e.budget - e.spent, 2)),
           'percentage', trim_scale(round(e.spent / e.budget * 100, 1)),
           'over', coalesce(e.spent > e.budget, false))::text, ',' order by e.name, e.id)
    into body
  from entry e;
  return '[' || coalesce(body, '') || ']';
end
$$;

revoke all on function public.set_budget(bigint, bigint, date, numeric),
  public.budget_status(integer, integer)
  from public, anon, authenticated, service_role;
grant execute on function public.set_budget(bigint, bigint, date, numeric),
  public.budget_status(integer, integer)
  to service_role;

-- GET /api/budgets is kept by the gateway's per-worker cache like the dashboards
-- (routers/dashboard.py, cached_rpc): a change of budgets empties it on every worker and
-- instance (expenses, categories and sessions already notify, sql/R50_dashboards.sql).
create or replace trigger budgets_cache_notify
  after insert or update or delete or truncate on public.budgets
  for each statement execute function public.notify_dashboard_cache();
