-- Changing, deleting and exporting expenses, and the audit trail (issue 12). A repeatable
-- file, idempotent: the runner applies it after the migrations (0002: expenses.created_by,
-- audit_log) and after the three older repeatable files, whose plpgsql functions
-- (register_user, revoke_token, create_expense) call audit_write() and
-- check_expense_references() from here at run time.
--
-- Who is asking: a request through the gateway is made with the service-role key and names
-- the caller's session in X-Gateway-Session ("<userId>:<jti>", checked by the pre-request
-- hook check_gateway_session); a request made with an `authenticated` JWT carries the
-- caller in its claims. request_actor_id() reads the one that applies. The gateway also
-- passes X-Request-ID and X-Client-Address for the audit rows.
-- Errors for the API user are SQLSTATE 'PTxyz' (PostgREST answers HTTP xyz).

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
-- Triggers on public.expenses
-- expenses_default_created_by (BEFORE INSERT): the recorder is whoever makes the request
--   (create_expense passes it explicitly); rows written without a caller (seeds, SQL
--   editor, COPY) count as recorded by their owner.
-- expenses_audit (AFTER INSERT OR UPDATE OR DELETE): one audit row per changed expense,
--   whatever the path (API, PostgREST, SQL editor, the cascade of `delete from users`).
-- ---------------------------------------------------------------------------------------
create or replace function public.expenses_default_created_by()
returns trigger
language plpgsql security definer set search_path = public, pg_temp
as $$
begin
  new.created_by := coalesce(new.created_by, public.request_actor_id(), new.user_id);
  return new;
end
$$;

create or replace function public.expenses_audit()
returns trigger
language plpgsql security definer set search_path = public, pg_temp
as $$
begin
  if tg_op = 'INSERT' then
    perform public.audit_write('expense.create', new.id, null, to_jsonb(new),
                               public.request_actor_id());
  elsif tg_op = 'UPDATE' then
    perform public.audit_write('expense.update', new.id, to_jsonb(old), to_jsonb(new),
                               public.request_actor_id());
  else
    perform public.audit_write('expense.delete', old.id, to_jsonb(old), null,
                               public.request_actor_id());
  end if;
  return null;
end
$$;

drop trigger if exists expenses_default_created_by on public.expenses;
create trigger expenses_default_created_by
  before insert on public.expenses
  for each row execute function public.expenses_default_created_by();

drop trigger if exists expenses_audit on public.expenses;
create trigger expenses_audit
  after insert or update or delete on public.expenses
  for each row execute function public.expenses_audit();

-- ---------------------------------------------------------------------------------------
-- expense_etag(row) -> the strong ETag (without quotes) of GET/PUT /api/expenses/{id}:
-- a digest of every column, so any change anyone makes gives a new one.
-- ---------------------------------------------------------------------------------------
create or replace function public.expense_etag(p_row public.expenses)
returns text
language sql immutable
as $$
  select md5(to_jsonb(p_row)::text)
$$;

-- Unknown references are 400 naming the field (POST and PUT /api/expenses give the same
-- messages).
create or replace function public.check_expense_references(
  p_user_id bigint, p_category_id bigint, p_payment_method_id bigint)
returns void
language plpgsql stable security definer set search_path = public, pg_temp
as $$
begin
  if p_user_id is not null and not exists (select 1 from public.users where id = p_user_id) then
    raise sqlstate 'PT400' using message = 'Invalid user_id: user does not exist';
  end if;
  if p_category_id is not null
     and not exists (select 1 from public.categories where id = p_category_id) then
    raise sqlstate 'PT400' using message = 'Invalid category_id: category does not exist';
  end if;
  if p_payment_method_id is not null
     and not exists (select 1 from public.payment_methods where id = p_payment_method_id) then
    raise sqlstate 'PT400' using message = 'Invalid payment_method_id: payment method does not exist';
  end if;
end
$$;

-- ---------------------------------------------------------------------------------------
-- get_expense(id) -> {"expense": <expense_json>, "etag": "..."}; 404 Expense not found.
-- Called by: GET /api/expenses/{id} (every member may read every expense, as in the list).
-- ---------------------------------------------------------------------------------------
create or replace function public.get_expense(p_id bigint)
returns json
language plpgsql stable security definer set search_path = public, pg_temp
as $$
declare
  found_row public.expenses;
begin
  select * into found_row from public.expenses where id = p_id;
  if not found then
    raise sqlstate 'PT404' using message = 'Expense not found';
  end if;
  return json_build_object('expense', public.expense_json(p_id),
                           'etag', public.expense_etag(found_row));
end
$$;

-- The row to change, locked, once the caller may change it and still has the version they
-- read: 404, then 403 (neither owner nor recorder), then 412 (p_if_match given and none of
-- its tags is the current ETag). Raising rolls the whole request back: nothing changes.
create or replace function public.lock_expense_for_change(p_id bigint, p_if_match text[])
returns public.expenses
language plpgsql volatile security definer set search_path = public, pg_temp
as $$
declare
  actor bigint := public.request_actor_id();
  current_row public.expenses;
begin
  select * into current_row from public.expenses where id = p_id for update;
  if not found then
    raise sqlstate 'PT404' using message = 'Expense not found';
  end if;
  if actor is null or (current_row.user_id <> actor
                       and current_row.created_by is distinct from actor) then
    raise sqlstate 'PT403' using message = 'You can only change your own expenses';
  end if;
  if p_if_match is not null
     and not public.expense_etag(current_row) = any (p_if_match) then
    raise sqlstate 'PT412' using message = 'Expense was changed by someone else';
  end if;
  return current_row;
end
$$;

-- ---------------------------------------------------------------------------------------
-- update_expense(id, changes, if_match) -> {"expense": <expense_json>, "etag": "..."}
-- Called by: PUT /api/expenses/{id}. `changes` holds only the fields the client sent
-- (already validated like POST's); the totals trigger moves the amount between users,
-- months and categories and the audit trigger records before/after, all in this
-- transaction.
-- ---------------------------------------------------------------------------------------
create or replace function public.update_expense(p_id bigint, p_changes jsonb,
                                                 p_if_match text[] default null)
returns json
language plpgsql volatile security definer set search_path = public, pg_temp
as $$
declare
  old_row public.expenses := public.lock_expense_for_change(p_id, p_if_match);
  new_row public.expenses;
begin
  perform public.check_expense_references(
    (p_changes ->> 'user_id')::bigint, (p_changes ->> 'category_id')::bigint,
    (p_changes ->> 'payment_method_id')::bigint);
  update public.expenses e set
    amount = case when p_changes ? 'amount' then (p_changes ->> 'amount')::numeric else e.amount end,
    category_id = case when p_changes ? 'category_id'
                       then (p_changes ->> 'category_id')::bigint else e.category_id end,
    payment_method_id = case when p_changes ? 'payment_method_id'
                             then (p_changes ->> 'payment_method_id')::bigint
                             else e.payment_method_id end,
    description = case when p_changes ? 'description'
                       then p_changes ->> 'description' else e.description end,
    date = case when p_changes ? 'date' then (p_changes ->> 'date')::date else e.date end,
    user_id = case when p_changes ? 'user_id' then (p_changes ->> 'user_id')::bigint
                   else e.user_id end
  where e.id = old_row.id
  returning * into new_row;
  return json_build_object('expense', public.expense_json(p_id),
                           'etag', public.expense_etag(new_row));
end
$$;

-- ---------------------------------------------------------------------------------------
-- delete_expense(id, if_match) -> {"id": N}. Called by: DELETE /api/expenses/{id}.
-- ---------------------------------------------------------------------------------------
create or replace function public.delete_expense(p_id bigint, p_if_match text[] default null)
returns json
language plpgsql volatile security definer set search_path = public, pg_temp
as $$
declare
  old_row public.expenses := public.lock_expense_for_change(p_id, p_if_match);
begin
  delete from public.expenses where id = old_row.id;
  return json_build_object('id', old_row.id);
end
$$;

-- ---------------------------------------------------------------------------------------
-- CSV export (GET /api/expenses/export.csv)
-- csv_cell(text): one RFC 4180 field. A value that a spreadsheet would run as a formula
-- (it begins with = + - @, a tab or a carriage return) gets a leading apostrophe (OWASP
-- "CSV Injection"); a field holding a comma, quote, CR or LF is quoted, quotes doubled.
-- ---------------------------------------------------------------------------------------
create or replace function public.csv_cell(p_value text)
returns text
language sql immutable
as $$
  select case
    when p_value is null then ''
    when s ~ '[",\r\n]' then '"' || replace(s, '"', '""') || '"'
    else s
  end
  from (select case when p_value ~ '^[=+\-@\t\r]' then '''' || p_value else p_value end) as v (s)
$$;

-- export_expenses_csv(filters, after, limit) -> {"csv": "<rows, CRLF-terminated>",
--   "rows": n, "last_date": ..., "last_id": ...}: the next `p_limit` rows of the list's
-- order (date desc, id desc) after the key (p_after_date, p_after_id). The gateway asks for
-- one page after another and streams each on, so no process holds the whole export.
create or replace function public.export_expenses_csv(
  p_user_id bigint default null, p_category_id bigint default null,
  p_date_from date default null, p_date_to date default null,
  p_after_date date default null, p_after_id bigint default null,
  p_limit integer default 5000)
returns json
language plpgsql stable security definer set search_path = public, pg_temp
set plan_cache_mode = force_custom_plan
as $$
declare
  result json;
begin
  with page as (
    select e.id, e.date,
           e.id || ',' || e.date || ',' || public.csv_cell(u.name) || ','
             || public.csv_cell(c.name) || ',' || public.csv_cell(pm.name) || ','
             || trim_scale(e.amount) || ',' || public.csv_cell(e.description) || ','
             || (to_json(e.created_at) #>> '{}') || E'\r\n' as line
    from public.expenses e
    join public.users u on u.id = e.user_id
    join public.categories c on c.id = e.category_id
    left join public.payment_methods pm on pm.id = e.payment_method_id
    where (p_user_id is null or e.user_id = p_user_id)
      and (p_category_id is null or e.category_id = p_category_id)
      and (p_date_from is null or e.date >= p_date_from)
      and (p_date_to is null or e.date <= p_date_to)
      and (p_after_id is null or (e.date, e.id) < (p_after_date, p_after_id))
    order by e.date desc, e.id desc
    limit least(greatest(p_limit, 1), 50000)
  ), last_row as (
    select id, date from page order by date, id limit 1
  )
  select json_build_object(
           'csv', coalesce((select string_agg(line, '' order by date desc, id desc) from page), ''),
           'rows', (select count(*) from page),
           'last_date', (select date from last_row),
           'last_id', (select id from last_row))
    into result;
  return result;
end
$$;

-- ---------------------------------------------------------------------------------------
-- record_login(user_id, success): the audit row of POST /api/auth/login. A login writes
-- nothing else, so this is its own transaction. user_id is the account the login name
-- matched (null if none); a failed login has no actor.
-- ---------------------------------------------------------------------------------------
create or replace function public.record_login(p_user_id bigint, p_success boolean)
returns void
language sql volatile security definer set search_path = public, pg_temp
as $$
  select public.audit_write(case when p_success then 'auth.login' else 'auth.login_failed' end,
                            p_user_id, null, null,
                            case when p_success then p_user_id end);
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

-- ---------------------------------------------------------------------------------------
-- Privileges. The audit log is append-only for every API role: nobody but its owner can
-- update, delete or truncate it (supabase_schema.sql grants ALL on every table to
-- service_role each time it runs; this file runs after it and takes that back). Rows are
-- written only by the SECURITY DEFINER functions above.
-- ---------------------------------------------------------------------------------------
revoke all on public.audit_log from public, anon, authenticated, service_role;
revoke all on sequence public.audit_log_id_seq from public, anon, authenticated, service_role;

revoke all on function public.request_header(text), public.request_actor_id(),
  public.audit_write(text, bigint, jsonb, jsonb, bigint),
  public.expenses_default_created_by(), public.expenses_audit(),
  public.expense_etag(public.expenses), public.check_expense_references(bigint, bigint, bigint),
  public.get_expense(bigint), public.lock_expense_for_change(bigint, text[]),
  public.update_expense(bigint, jsonb, text[]), public.delete_expense(bigint, text[]),
  public.csv_cell(text),
  public.export_expenses_csv(bigint, bigint, date, date, date, bigint, integer),
  public.record_login(bigint, boolean), public.prune_audit_log(integer)
  from public, anon, authenticated, service_role;
-- What the gateway calls (with the service-role key); the rest runs only inside these, as
-- their owner.
grant execute on function public.get_expense(bigint), public.update_expense(bigint, jsonb, text[]),
  public.delete_expense(bigint, text[]),
  public.export_expenses_csv(bigint, bigint, date, date, date, bigint, integer),
  public.record_login(bigint, boolean)
  to service_role;

-- ---------------------------------------------------------------------------------------
-- Row level security for members writing through PostgREST with an `authenticated` JWT:
-- the same rule as update_expense/delete_expense — the owner (user_id) or the recorder
-- (created_by) may change or delete an expense, nobody else; and a member records as
-- themselves. Only the columns the API lets a member change are updatable.
-- ---------------------------------------------------------------------------------------
drop policy if exists expenses_recorder_read on public.expenses;
create policy expenses_recorder_read on public.expenses
  for select to authenticated using (created_by = public.request_user_id());

drop policy if exists expenses_owner_or_recorder_update on public.expenses;
create policy expenses_owner_or_recorder_update on public.expenses
  for update to authenticated
  using (user_id = public.request_user_id() or created_by = public.request_user_id())
  with check (true);

drop policy if exists expenses_owner_or_recorder_delete on public.expenses;
create policy expenses_owner_or_recorder_delete on public.expenses
  for delete to authenticated
  using (user_id = public.request_user_id() or created_by = public.request_user_id());

drop policy if exists expenses_recorded_by_caller on public.expenses;
create policy expenses_recorded_by_caller on public.expenses
  as restrictive for insert to authenticated
  with check (created_by = public.request_user_id());

grant update (amount, category_id, payment_method_id, description, date, user_id),
  delete on public.expenses to authenticated;
