-- Expenses: the functions behind /api/expenses (list, create, get, update, delete, CSV
-- export), which the gateway calls through PostgREST with the service-role key, and the
-- triggers that record who wrote an expense and audit every change. Repeatable
-- (sql/README.md), idempotent; applied after R20_audit.sql (audit_write, request_actor_id).
-- The totals trigger on expenses is the dashboards' (R50_dashboards.sql); the row level
-- security for members writing through PostgREST is in R10_roles_privileges.sql.
-- Errors for the API user are SQLSTATE 'PTxyz' (PostgREST answers HTTP xyz).

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
-- expense_etag(row) -> the strong ETag (without quotes) of GET/PUT /api/expenses/{id}:
-- `<id>-<version>`. Every change anyone makes raises the version (trigger expenses_version
-- below), so it gives a new tag; and the tag is opaque: it says nothing about the row's
-- columns (a digest of them let a reader recompute created_by offline, issue 24).
-- ---------------------------------------------------------------------------------------
create or replace function public.expense_etag(p_row public.expenses)
returns text
language sql immutable
as $$
  select p_row.id || '-' || p_row.version
$$;

-- ---------------------------------------------------------------------------------------
-- Search (issue 23): `q` matches a case- and accent-insensitive substring of the
-- description, the category name or the payment method name.
-- search_fold(text): the folded form both sides are compared in: lower case, and without
-- accents when the unaccent extension is installed (migration 0009 installs it where the
-- server has it). IMMUTABLE so that an index can hold it: unaccent() itself is only STABLE
-- because its rules file could change; we name the dictionary explicitly, the usual way.
-- Defined in a DO block because its body depends on which extensions the database has
-- (in whatever schema they were installed); the trigram index on the folded description
-- (pg_trgm) is made here too, since its expression needs this function, and is rebuilt
-- when the function's body changes (an index on a changed immutable function would lie).
-- Without pg_trgm the search still works, scanning the rows the other filters leave.
-- ---------------------------------------------------------------------------------------
do $$
declare
  unaccent_schema text := (select extnamespace::regnamespace::text from pg_extension
                           where extname = 'unaccent');
  trgm_schema text := (select extnamespace::regnamespace::text from pg_extension
                       where extname = 'pg_trgm');
  body text;
  current_body text := (select prosrc from pg_proc
                        where oid = to_regprocedure('public.search_fold(text)'));
begin
  -- every name qualified, so the function needs no `set search_path` and Postgres can
  -- inline it (into the index expression too): the per-row cost of each written
  -- description (issue 23's bulk writes) is a call less and no configuration swap
  body := case when unaccent_schema is null then 'select pg_catalog.lower(p_value)'
               else format('select pg_catalog.lower(%1$s.unaccent(%2$L::pg_catalog.regdictionary, p_value))',
                           quote_ident(unaccent_schema), unaccent_schema || '.unaccent')
          end;
  -- the index must never outlive a change of the function it was built with
  if current_body is distinct from body then
    drop index if exists public.expenses_description_search_idx;
  end if;
  execute format($f$
    create or replace function public.search_fold(p_value text)
    returns text
    language sql immutable parallel safe strict
    as %L$f$, body);
  if trgm_schema is not null then
    execute format('create index if not exists expenses_description_search_idx '
                   'on public.expenses using gin (public.search_fold(description) %I.gin_trgm_ops)',
                   trgm_schema);
  end if;
end
$$;

-- The LIKE pattern of `q`: folded, its own % _ and \ taken literally, anywhere in the text.
create or replace function public.search_pattern(p_q text)
returns text
language sql immutable parallel safe
as $$
  select '%' || replace(replace(replace(public.search_fold(p_q), '\', '\\'), '%', '\%'), '_', '\_')
         || '%'
$$;

-- The 400s of the list and export's extra filters (issue 23), before any row is read.
create or replace function public.check_expense_filters(
  p_min_amount numeric, p_max_amount numeric, p_q text)
returns void
language plpgsql immutable
as $$
begin
  if p_min_amount < 0 or p_max_amount < 0 then
    raise sqlstate 'PT400' using message = 'min_amount and max_amount must not be negative';
  end if;
  if p_min_amount > p_max_amount then
    raise sqlstate 'PT400' using message = 'min_amount must not be more than max_amount';
  end if;
  if char_length(p_q) > 200 then
    raise sqlstate 'PT400' using message = 'q must be at most 200 characters';
  end if;
end
$$;

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
-- Issue 23 added payment_method_id, min_amount, max_amount (plain filters, like the
-- category) and q. A search is a statement of its own (its own generic plan): the matching
-- category and payment method ids are found first in their small tables; the rows are then
-- three disjoint branches - description matches (the trigram index), else category
-- matches, else payment method matches - the last two behind the one-time filter
-- `cardinality(ids) > 0`, so a search that names no category or method runs only the
-- indexed branch (an OR of the three would be planned as one sequential scan).
create or replace function public.list_expenses(
  p_user_id bigint default null, p_category_id bigint default null,
  p_date_from date default null, p_date_to date default null,
  p_limit integer default null, p_offset integer default 0,
  p_payment_method_id bigint default null, p_min_amount numeric default null,
  p_max_amount numeric default null, p_q text default null)
returns public."application/json"
language plpgsql stable security definer set search_path = public, pg_temp
set plan_cache_mode = force_generic_plan
as $$
declare
  body text;
  pattern text;
  category_ids bigint[];
  method_ids bigint[];
begin
  perform public.require_gateway_session();
  if p_limit is not null and p_limit < 1 or p_offset is null or p_offset < 0 then
    raise sqlstate 'PT400' using message = 'limit must be at least 1 and offset at least 0';
  end if;
  perform public.check_expense_filters(p_min_amount, p_max_amount, p_q);
  if p_q is null then
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
            and (p_payment_method_id is null or e.payment_method_id = p_payment_method_id)
            and e.amount >= coalesce(p_min_amount, '-Infinity')
            and e.amount <= coalesce(p_max_amount, 'Infinity')
            and e.date >= coalesce(p_date_from, '-infinity')
            and e.date <= coalesce(p_date_to, 'infinity')
          order by e.date desc, e.id desc
          limit p_limit offset p_offset) t;
  else
    pattern := public.search_pattern(p_q);
    category_ids := array(select id from public.categories
                          where public.search_fold(name) like pattern);
    method_ids := array(select id from public.payment_methods
                        where public.search_fold(name) like pattern);
    select string_agg(row_to_json(t)::text, ',') into body
    from (select e.id, e.user_id, u.name as user_name, trim_scale(e.amount) as amount,
                 e.category_id, c.name as category, e.payment_method_id,
                 pm.name as payment_method, e.description, e.date, e.created_at
          from (select x.* from public.expenses x
                where public.search_fold(x.description) like pattern
                union all
                select x.* from public.expenses x
                where cardinality(category_ids) > 0 and x.category_id = any (category_ids)
                  and not coalesce(public.search_fold(x.description) like pattern, false)
                union all
                select x.* from public.expenses x
                where cardinality(method_ids) > 0 and x.payment_method_id = any (method_ids)
                  and x.category_id <> all (category_ids)
                  and not coalesce(public.search_fold(x.description) like pattern, false)) e
          join public.users u on u.id = e.user_id
          join public.categories c on c.id = e.category_id
          left join public.payment_methods pm on pm.id = e.payment_method_id
          where (p_user_id is null or e.user_id = p_user_id)
            and (p_category_id is null or e.category_id = p_category_id)
            and (p_payment_method_id is null or e.payment_method_id = p_payment_method_id)
            and e.amount >= coalesce(p_min_amount, '-Infinity')
            and e.amount <= coalesce(p_max_amount, 'Infinity')
            and e.date >= coalesce(p_date_from, '-infinity')
            and e.date <= coalesce(p_date_to, 'infinity')
          order by e.date desc, e.id desc
          limit p_limit offset p_offset) t;
  end if;
  return '[' || coalesce(body, '') || ']';
end
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
  perform public.require_gateway_session();
  perform public.require_write_access();  -- a viewer changes nothing (R21_access_roles.sql)
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
  -- by the expenses_audit_insert trigger in this transaction.
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
  perform public.require_gateway_session();
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
  perform public.require_gateway_session();  -- update_expense and delete_expense start here
  perform public.require_write_access();  -- a viewer changes nothing (R21_access_roles.sql)
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
-- gets a leading apostrophe (OWASP "CSV Injection"); a field holding a comma, quote, CR or
-- LF is quoted, quotes doubled. Which values count as formulas is csv_formula_trigger().
-- ---------------------------------------------------------------------------------------
-- csv_formula_trigger() -> the regular expression of the formula rule (docs/CONTRACT.md;
-- the CSV import reverses the neutralisation with the same rule): after any run of leading
-- blank or invisible characters (tab, LF, VT, FF, CR, space, NEL, NBSP and the other
-- Unicode spaces, the zero-width characters and marks U+200B-U+200F, U+2060-U+2064, the
-- BOM U+FEFF, U+3000),
-- the first other character is = + - @, a fullwidth ＝ ＋ － ＠ or a small ﹦ ﹢ ﹣ ﹫;
-- or that leading run holds a tab or a carriage return.
create or replace function public.csv_formula_trigger()
returns text
language sql immutable
as $$
  select '^[\t\n\v\f\r\u0020\u0085\u00a0\u1680\u180e\u2000-\u200f\u2028-\u202f\u205f-\u2064\u3000\ufeff]*'
         '[=+\-@\uff1d\uff0b\uff0d\uff20\ufe66\ufe62\ufe63\ufe6b\t\r]'
$$;

create or replace function public.csv_cell(p_value text)
returns text
language sql immutable
as $$
  select case
    when p_value is null then ''
    when s ~ '[",\r\n]' then '"' || replace(s, '"', '""') || '"'
    else s
  end
  from (select case when p_value ~ public.csv_formula_trigger() then '''' || p_value
                    else p_value end) as v (s)
$$;

-- export_page(filters, after, limit, more filters, folded pattern, matching category and
-- payment method ids) -> the next `p_limit` expenses (at most 50,000) of the list's order
-- (date desc, id desc) after the key (p_after_date, p_after_id), with the names the exports
-- print. The one filter of both exports (export_expenses_csv here, export_expenses_rows in
-- R42). A plain SQL function, so the caller's query inlines it and is planned with its
-- values (the callers force custom plans). Not callable by any API role.
create or replace function public.export_page(
  p_user_id bigint, p_category_id bigint, p_date_from date, p_date_to date,
  p_after_date date, p_after_id bigint, p_limit integer, p_payment_method_id bigint,
  p_min_amount numeric, p_max_amount numeric,
  p_pattern text, p_category_ids bigint[], p_method_ids bigint[])
returns table (id bigint, date date, user_name text, category text, payment_method text,
               amount numeric, description text, created_at timestamptz)
language sql stable
as $$
  select e.id, e.date, u.name, c.name, pm.name, e.amount, e.description, e.created_at
  from public.expenses e
  join public.users u on u.id = e.user_id
  join public.categories c on c.id = e.category_id
  left join public.payment_methods pm on pm.id = e.payment_method_id
  where (p_user_id is null or e.user_id = p_user_id)
    and (p_category_id is null or e.category_id = p_category_id)
    and (p_date_from is null or e.date >= p_date_from)
    and (p_date_to is null or e.date <= p_date_to)
    and (p_payment_method_id is null or e.payment_method_id = p_payment_method_id)
    and (p_min_amount is null or e.amount >= p_min_amount)
    and (p_max_amount is null or e.amount <= p_max_amount)
    and (p_pattern is null or public.search_fold(e.description) like p_pattern
         or e.category_id = any (p_category_ids) or e.payment_method_id = any (p_method_ids))
    and (p_after_id is null or (e.date, e.id) < (p_after_date, p_after_id))
  order by e.date desc, e.id desc
  limit least(greatest(p_limit, 1), 50000)
$$;

-- export_expenses_csv(filters, after, limit, more filters) -> {"csv": "<rows, CRLF-terminated>",
--   "rows": n, "last_date": ..., "last_id": ...}: the next `p_limit` rows of the list's
-- order (date desc, id desc) after the key (p_after_date, p_after_id). The gateway asks for
-- one page after another and streams each on, so no process holds the whole export.
create or replace function public.export_expenses_csv(
  p_user_id bigint default null, p_category_id bigint default null,
  p_date_from date default null, p_date_to date default null,
  p_after_date date default null, p_after_id bigint default null,
  p_limit integer default 5000, p_payment_method_id bigint default null,
  p_min_amount numeric default null, p_max_amount numeric default null,
  p_q text default null)
returns json
language plpgsql stable security definer set search_path = public, pg_temp
set plan_cache_mode = force_custom_plan
as $$
declare
  result json;
  pattern text := public.search_pattern(p_q);
  category_ids bigint[];
  method_ids bigint[];
begin
  perform public.require_gateway_session();
  perform public.check_expense_filters(p_min_amount, p_max_amount, p_q);
  if p_q is not null then
    category_ids := array(select id from public.categories
                          where public.search_fold(name) like pattern);
    method_ids := array(select id from public.payment_methods
                        where public.search_fold(name) like pattern);
  end if;
  with page as (
    select p.id, p.date,
           p.id || ',' || p.date || ',' || public.csv_cell(p.user_name) || ','
             || public.csv_cell(p.category) || ',' || public.csv_cell(p.payment_method) || ','
             || trim_scale(p.amount) || ',' || public.csv_cell(p.description) || ','
             || (to_json(p.created_at) #>> '{}') || E'\r\n' as line
    from public.export_page(p_user_id, p_category_id, p_date_from, p_date_to, p_after_date,
                            p_after_id, p_limit, p_payment_method_id, p_min_amount,
                            p_max_amount, pattern, category_ids, method_ids) p
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
-- Triggers on public.expenses
-- expenses_default_created_by (BEFORE INSERT, only for a row without created_by): the
--   recorder is whoever makes the request (create_expense, import and recurring pass it
--   explicitly); rows written without a caller (seeds, SQL editor, COPY) count as recorded
--   by their owner.
-- expenses_audit_insert, expenses_audit_delete (AFTER INSERT / DELETE, FOR EACH STATEMENT
--   with the statement's rows as a transition table) and expenses_audit (AFTER UPDATE, FOR
--   EACH ROW): one audit row per changed expense, whatever the path (API, PostgREST, SQL
--   editor, COPY, import, recurring, the cascade of `delete from users`). Inserts and
--   deletes are written set-based, once per statement: a bulk insert (import, recurring,
--   COPY) pays one INSERT ... SELECT instead of a function call per row (issue 23: 10,000
--   occurrences in under a second; docs/performance.md). Updates stay per row: the before
--   and after images are paired by the row itself, which holds even when an UPDATE changes
--   the id.
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

-- expenses_version (BEFORE UPDATE) and expenses_version_insert (BEFORE INSERT, only for a
-- row that does not already hold the column's default 1): a new row is version 1, every
-- update adds 1 to the stored version, whatever the writer sends (a member writing through
-- PostgREST cannot set it: no UPDATE grant on the column, and this overrides an INSERT's
-- value). The WHEN clause spares a bulk insert a function call per row.
create or replace function public.expenses_version()
returns trigger
language plpgsql
as $$
begin
  new.version := case when tg_op = 'INSERT' then 1 else old.version + 1 end;
  return new;
end
$$;

-- AFTER UPDATE, per row: the row before and after.
create or replace function public.expenses_audit()
returns trigger
language plpgsql security definer set search_path = public, pg_temp
as $$
begin
  perform public.audit_write('expense.update', new.id, to_jsonb(old) - 'version',
                             to_jsonb(new) - 'version', public.request_actor_id());
  return null;
end
$$;

-- AFTER INSERT, per statement: "expense.create" with the row as stored, one per row, in
-- id order; the request's actor, id and address read once (audit_context).
create or replace function public.expenses_audit_insert()
returns trigger
language plpgsql security definer set search_path = public, pg_temp
as $$
declare
  ctx record := public.audit_context();
begin
  insert into public.audit_log (actor_id, action, target_id, request_id, client_addr, before, after)
  select ctx.actor_id, 'expense.create', n.id, ctx.request_id, ctx.client_addr, null,
         to_jsonb(n) - 'version'
  from new_rows n
  order by n.id;
  return null;
end
$$;

-- AFTER DELETE, per statement: "expense.delete" with the row as it was, one per row.
create or replace function public.expenses_audit_delete()
returns trigger
language plpgsql security definer set search_path = public, pg_temp
as $$
declare
  ctx record := public.audit_context();
begin
  insert into public.audit_log (actor_id, action, target_id, request_id, client_addr, before, after)
  select ctx.actor_id, 'expense.delete', o.id, ctx.request_id, ctx.client_addr,
         to_jsonb(o) - 'version', null
  from old_rows o
  order by o.id;
  return null;
end
$$;

drop trigger if exists expenses_default_created_by on public.expenses;
create trigger expenses_default_created_by
  before insert on public.expenses
  for each row when (new.created_by is null)
  execute function public.expenses_default_created_by();

drop trigger if exists expenses_version on public.expenses;
create trigger expenses_version
  before update on public.expenses
  for each row execute function public.expenses_version();

drop trigger if exists expenses_version_insert on public.expenses;
create trigger expenses_version_insert
  before insert on public.expenses
  for each row when (new.version is distinct from 1)
  execute function public.expenses_version();

-- Replaces the per-row audit of inserts and deletes that releases before this one had
-- (the same name, AFTER INSERT OR UPDATE OR DELETE FOR EACH ROW): now updates only.
drop trigger if exists expenses_audit on public.expenses;
create trigger expenses_audit
  after update on public.expenses
  for each row execute function public.expenses_audit();

drop trigger if exists expenses_audit_insert on public.expenses;
create trigger expenses_audit_insert
  after insert on public.expenses
  referencing new table as new_rows
  for each statement execute function public.expenses_audit_insert();

drop trigger if exists expenses_audit_delete on public.expenses;
create trigger expenses_audit_delete
  after delete on public.expenses
  referencing old table as old_rows
  for each statement execute function public.expenses_audit_delete();

-- ---------------------------------------------------------------------------------------
-- Privileges: the gateway (service role) calls the endpoints' functions; the rest runs
-- only inside them, as their owner.
-- ---------------------------------------------------------------------------------------
revoke all on function public.expense_json(bigint),
  public.check_expense_references(bigint, bigint, bigint),
  public.expense_etag(public.expenses),
  public.list_expenses(bigint, bigint, date, date, integer, integer, bigint, numeric, numeric, text),
  public.create_expense(bigint, bigint, bigint, bigint, numeric, text, date, text, text, integer),
  public.create_expense_response(bigint, bigint, bigint, bigint, numeric, text, date, text, text, integer),
  public.get_expense(bigint), public.lock_expense_for_change(bigint, text[]),
  public.update_expense(bigint, jsonb, text[]), public.delete_expense(bigint, text[]),
  public.csv_formula_trigger(), public.csv_cell(text), public.search_fold(text),
  public.search_pattern(text), public.check_expense_filters(numeric, numeric, text),
  public.export_expenses_csv(bigint, bigint, date, date, date, bigint, integer, bigint, numeric, numeric, text),
  public.export_page(bigint, bigint, date, date, date, bigint, integer, bigint, numeric, numeric, text, bigint[], bigint[]),
  public.expenses_default_created_by(), public.expenses_version(), public.expenses_audit(),
  public.expenses_audit_insert(), public.expenses_audit_delete()
  from public, anon, authenticated, service_role;
-- The trigram index's expression runs as whoever writes a row: a member inserting or
-- updating through PostgREST directly (RLS) needs it, and so does the service key.
grant execute on function public.search_fold(text) to authenticated, service_role;
grant execute on function public.expense_json(bigint),
  public.list_expenses(bigint, bigint, date, date, integer, integer, bigint, numeric, numeric, text),
  public.create_expense(bigint, bigint, bigint, bigint, numeric, text, date, text, text, integer),
  public.create_expense_response(bigint, bigint, bigint, bigint, numeric, text, date, text, text, integer),
  public.get_expense(bigint), public.update_expense(bigint, jsonb, text[]),
  public.delete_expense(bigint, text[]),
  public.export_expenses_csv(bigint, bigint, date, date, date, bigint, integer, bigint, numeric, numeric, text)
  to service_role;
