-- Recurring expenses (issue 23): /api/recurring and materialize_recurring(). Repeatable
-- (sql/README.md); applied after R40_expenses.sql (check_expense_references) and
-- R20_audit.sql (audit_write, audit_context).
-- A rule's schedule is start_date + n weeks / months / years (n = 0, 1, ...), computed
-- from the start each time, so month ends clamp without drifting: a rule on 31 January
-- falls on 28/29 February, 31 March, 30 April. Occurrences after the rule's last one and
-- up to `until` (today) become ordinary expenses; a changed rule applies from its next
-- occurrence on (what it made stays as it is).

-- The date of occurrence n of a schedule.
create or replace function public.recurring_date(p_start date, p_frequency text, p_n integer)
returns date
language sql immutable parallel safe
as $$
  select (p_start + case p_frequency when 'weekly' then make_interval(days => 7 * p_n)
                                     when 'monthly' then make_interval(months => p_n)
                                     else make_interval(years => p_n) end)::date
$$;

-- How many schedule steps fit between two dates (an upper bound for generate_series).
create or replace function public.recurring_steps(p_start date, p_frequency text, p_until date)
returns integer
language sql immutable parallel safe
as $$
  select greatest(-1, case p_frequency
    when 'weekly' then (p_until - p_start) / 7
    when 'monthly' then (extract(year from p_until) - extract(year from p_start))::integer * 12
                        + (extract(month from p_until) - extract(month from p_start))::integer
    else (extract(year from p_until) - extract(year from p_start))::integer end)
$$;

-- ---------------------------------------------------------------------------------------
-- materialize_recurring(until) -> how many expenses it created: every occurrence of every
-- rule (or only p_rule_id's) after the rule's last one, up to `until` and the rule's
-- end_date. One statement: the occurrences are claimed in recurring_occurrences (insert
-- ... on conflict do nothing: a concurrent run waits on the row the other inserted, then
-- skips it), the expenses inserted with the ids the claims reserved, and one audit row per
-- expense names its rule ("expense.recurring", after = {"rule_id","date"}) next to the
-- usual "expense.create" (the statement trigger's). Set-based throughout: the triggers on
-- expenses run once per statement, and the audit rows are one INSERT ... SELECT with the
-- request's context read once (10,000 occurrences: docs/performance.md). Run daily by
-- pg_cron where the database has it, else by the gateway's leader (background.py); after
-- downtime the next run catches up.
-- ---------------------------------------------------------------------------------------
create or replace function public.materialize_recurring(until date default current_date,
                                                        p_rule_id bigint default null)
returns integer
language plpgsql volatile security definer set search_path = public, pg_temp
as $$
declare
  created integer;
  ctx record := public.audit_context();
  expense_ids regclass := pg_get_serial_sequence('public.expenses', 'id')::regclass;
begin
  -- rules: materialized, so each rule's last occurrence is looked up once, not per date
  with rules as materialized (
    select r.*, (select max(o.occurs_on) from public.recurring_occurrences o
                 where o.rule_id = r.id) as last_on
    from public.recurring_expenses r
    where (p_rule_id is null or r.id = p_rule_id)
      and r.start_date <= until
  ), due as (
    select r.id as rule_id, d.occurs_on
    from rules r
    cross join lateral generate_series(0, public.recurring_steps(r.start_date, r.frequency,
                                                                 least(until, r.end_date))) n
    cross join lateral (select public.recurring_date(r.start_date, r.frequency, n) as occurs_on) d
    where d.occurs_on <= least(until, coalesce(r.end_date, until))
      and (r.last_on is null or d.occurs_on > r.last_on)
  ), claimed as (
    insert into public.recurring_occurrences (rule_id, occurs_on, expense_id)
    select rule_id, occurs_on, nextval(expense_ids)
    from due order by rule_id, occurs_on
    on conflict do nothing
    returning rule_id, occurs_on, expense_id
  ), made as (
    insert into public.expenses (id, user_id, category_id, payment_method_id, amount,
                                 description, date, created_by)
    select c.expense_id, r.user_id, r.category_id, r.payment_method_id, r.amount,
           r.description, c.occurs_on, coalesce(r.created_by, r.user_id)
    from claimed c join public.recurring_expenses r on r.id = c.rule_id
    returning id
  ), audited as (
    insert into public.audit_log (actor_id, action, target_id, request_id, client_addr,
                                  before, after)
    select ctx.actor_id, 'expense.recurring', c.expense_id, ctx.request_id, ctx.client_addr,
           null, jsonb_build_object('rule_id', c.rule_id, 'date', c.occurs_on)
    from claimed c
    order by c.expense_id
    returning 1
  )
  select count(*) into created from audited;
  return created;
end
$$;

-- One rule in the shape of /api/recurring, with the date of its next occurrence (null
-- when the rule has ended).
create or replace function public.recurring_json(p_id bigint)
returns json
language sql stable security definer set search_path = public, pg_temp
as $$
  select json_build_object(
    'id', r.id, 'user_id', r.user_id, 'amount', trim_scale(r.amount),
    'category_id', r.category_id, 'payment_method_id', r.payment_method_id,
    'description', r.description, 'frequency', r.frequency, 'start_date', r.start_date,
    'end_date', r.end_date,
    'next_date', (select d from generate_series(0, public.recurring_steps(r.start_date, r.frequency,
                                                     coalesce(r.end_date, greatest(current_date, r.start_date) + 800)) + 1) n,
                              lateral (select public.recurring_date(r.start_date, r.frequency, n) as d) x
                  where d > coalesce((select max(o.occurs_on) from public.recurring_occurrences o
                                      where o.rule_id = r.id), r.start_date - 1)
                    and (r.end_date is null or d <= r.end_date)
                  order by n limit 1))
  from public.recurring_expenses r
  where r.id = p_id
$$;

-- The checks POST and PUT share (400 naming the field; the references as for expenses).
create or replace function public.check_recurring(p_rule public.recurring_expenses)
returns void
language plpgsql stable security definer set search_path = public, pg_temp
as $$
begin
  perform public.check_expense_references(p_rule.user_id, p_rule.category_id,
                                          p_rule.payment_method_id);
  if p_rule.end_date < p_rule.start_date then
    raise sqlstate 'PT400' using message = 'end_date must not be before start_date';
  end if;
end
$$;

-- POST /api/recurring -> 201 body {"message","id","next_date","recurring"}; the
-- occurrences already due are created in the same transaction.
create or replace function public.create_recurring(p_actor_id bigint, p_rule jsonb)
returns public."application/json"
language plpgsql volatile security definer set search_path = public, pg_temp
as $$
declare
  rule public.recurring_expenses;
  result json;
begin
  perform public.require_gateway_session();
  perform public.require_write_access();  -- a viewer changes nothing (R21_access_roles.sql)
  rule := jsonb_populate_record(null::public.recurring_expenses, p_rule);
  rule.user_id := coalesce(rule.user_id, p_actor_id);
  perform public.check_recurring(rule);
  insert into public.recurring_expenses (user_id, category_id, payment_method_id, amount,
                                         description, frequency, start_date, end_date, created_by)
  values (rule.user_id, rule.category_id, rule.payment_method_id, rule.amount, rule.description,
          rule.frequency, rule.start_date, rule.end_date, p_actor_id)
  returning * into rule;
  perform public.audit_write('recurring.create', rule.id, null, to_jsonb(rule), p_actor_id);
  perform public.materialize_recurring(current_date, rule.id);
  result := public.recurring_json(rule.id);
  return json_build_object('message', 'Recurring expense created', 'id', rule.id,
                           'next_date', result -> 'next_date', 'recurring', result)::text;
end
$$;

-- GET /api/recurring -> every rule, by id.
create or replace function public.list_recurring()
returns public."application/json"
language plpgsql stable security definer set search_path = public, pg_temp
as $$
begin
  perform public.require_gateway_session();
  return coalesce((select json_agg(public.recurring_json(id) order by id)
                   from public.recurring_expenses), '[]')::text;
end
$$;

-- The rule to change, locked: 404, then 403 unless the caller owns or created it.
create or replace function public.lock_recurring_for_change(p_id bigint, p_actor_id bigint)
returns public.recurring_expenses
language plpgsql volatile security definer set search_path = public, pg_temp
as $$
declare
  rule public.recurring_expenses;
begin
  select * into rule from public.recurring_expenses where id = p_id for update;
  if not found then
    raise sqlstate 'PT404' using message = 'Recurring expense not found';
  end if;
  if rule.user_id <> p_actor_id and rule.created_by is distinct from p_actor_id then
    raise sqlstate 'PT403' using message = 'You can only change your own recurring expenses';
  end if;
  return rule;
end
$$;

-- PUT /api/recurring/{id} -> {"message","recurring"}: the fields sent change, from the
-- next occurrence on; any occurrence now due is created in the same transaction.
create or replace function public.update_recurring(p_id bigint, p_actor_id bigint, p_changes jsonb)
returns public."application/json"
language plpgsql volatile security definer set search_path = public, pg_temp
as $$
declare
  old_rule public.recurring_expenses;
  rule public.recurring_expenses;
begin
  perform public.require_gateway_session();
  perform public.require_write_access();  -- a viewer changes nothing (R21_access_roles.sql)
  old_rule := public.lock_recurring_for_change(p_id, p_actor_id);
  rule := jsonb_populate_record(old_rule, p_changes);
  perform public.check_recurring(rule);
  update public.recurring_expenses set
    user_id = rule.user_id, category_id = rule.category_id,
    payment_method_id = rule.payment_method_id, amount = rule.amount,
    description = rule.description, frequency = rule.frequency,
    start_date = rule.start_date, end_date = rule.end_date, updated_at = now()
  where id = p_id
  returning * into rule;
  perform public.audit_write('recurring.update', p_id, to_jsonb(old_rule), to_jsonb(rule),
                             p_actor_id);
  perform public.materialize_recurring(current_date, p_id);
  return json_build_object('message', 'Recurring expense updated',
                           'recurring', public.recurring_json(p_id))::text;
end
$$;

-- DELETE /api/recurring/{id} -> {"message","id"}: the rule goes, its expenses stay.
create or replace function public.delete_recurring(p_id bigint, p_actor_id bigint)
returns public."application/json"
language plpgsql volatile security definer set search_path = public, pg_temp
as $$
declare
  rule public.recurring_expenses;
begin
  perform public.require_gateway_session();
  perform public.require_write_access();  -- a viewer changes nothing (R21_access_roles.sql)
  rule := public.lock_recurring_for_change(p_id, p_actor_id);
  delete from public.recurring_expenses where id = p_id;
  perform public.audit_write('recurring.delete', p_id, to_jsonb(rule), null, p_actor_id);
  return json_build_object('message', 'Recurring expense deleted', 'id', p_id)::text;
end
$$;

-- pg_cron, where the database has it: one job, daily at 00:05 (server time).
do $$
begin
  if exists (select 1 from pg_extension where extname = 'pg_cron') then
    execute $c$select cron.schedule('materialize-recurring', '5 0 * * *',
                                     'select public.materialize_recurring()')$c$;
  end if;
end
$$;

revoke all on function public.recurring_date(date, text, integer),
  public.recurring_steps(date, text, date),
  public.materialize_recurring(date, bigint), public.recurring_json(bigint),
  public.check_recurring(public.recurring_expenses),
  public.create_recurring(bigint, jsonb), public.list_recurring(),
  public.lock_recurring_for_change(bigint, bigint),
  public.update_recurring(bigint, bigint, jsonb), public.delete_recurring(bigint, bigint)
  from public, anon, authenticated, service_role;
grant execute on function public.create_recurring(bigint, jsonb), public.list_recurring(),
  public.update_recurring(bigint, bigint, jsonb), public.delete_recurring(bigint, bigint)
  to service_role;
