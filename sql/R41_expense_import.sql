-- Import (issue 23): POST /api/expenses/import. The gateway parses the CSV's framing
-- (records, fields, line numbers) while the body streams in; everything else is decided
-- here, set-based, in one transaction: the values are parsed and the names resolved for all
-- rows at once (hash joins against the small reference tables), every bad line is reported,
-- and only a file without one is inserted, with one INSERT ... SELECT (the triggers keep the
-- totals and the audit trail as for any insert). Repeatable (sql/README.md); applied after
-- R40_expenses.sql (csv_cell).

-- The text a CSV cell held before the export neutralised it (csv_cell prefixes a value a
-- spreadsheet would run as a formula with '): a value beginning with ' whose rest csv_cell
-- would neutralise into exactly this value. Derived from csv_cell itself, so a change of
-- which prefixes it neutralises is undone alike.
create or replace function public.csv_restore(p_value text)
returns text
language sql immutable parallel safe
as $$
  select case
    when left(p_value, 1) = ''''
         and (select case when c like '"%' then replace(substr(c, 2, length(c) - 2), '""', '"')
                          else c end
              from (select public.csv_cell(substr(p_value, 2))) as x (c)) = p_value
    then substr(p_value, 2)
    else p_value
  end
$$;

-- ---------------------------------------------------------------------------------------
-- import_expenses(actor, rows, dry_run, skip_duplicates) -> one of
--   {"error": "...", "lines": [{"line", "error"}]}   (nothing written; the gateway: 400)
--   {"message", "would_import"}                        (dry run: nothing written; 200)
--   {"message", "imported"}                            (201)
-- rows: a JSON array of [line, date, user, category, payment_method, amount, description,
-- framing_error] (texts as the CSV held them; framing_error set by the gateway for a
-- record it could not split). user, category and payment method by name (a user's
-- case-insensitively) or id; an empty payment method or description is null.
-- ---------------------------------------------------------------------------------------
create or replace function public.import_expenses(
  p_actor_id bigint, p_rows jsonb, p_dry_run boolean default false,
  p_skip_duplicates boolean default false)
returns json
language plpgsql volatile security definer set search_path = public, pg_temp
as $$
declare
  problems json;
  bad integer;
  total integer;
  duplicates integer;
  written integer;
begin
  perform public.require_gateway_session();
  perform public.require_write_access();  -- a viewer changes nothing (R21_access_roles.sql)
  drop table if exists pg_temp.import_rows;
  create temp table import_rows on commit drop as
  select s.line, s.framing_error, s.date_text, s.user_text, s.category_text, s.method_text,
         s.amount_text, s.description,
         case when s.date_text ~ '^[1-9][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$'
                   and substr(s.date_text, 9, 2)::integer
                       <= extract(day from date_trunc('month', (left(s.date_text, 8) || '01')::date)
                                          + interval '1 month - 1 day')
                   and left(s.date_text, 4)::integer between 1900 and 2200
              then s.date_text::date end as date,
         coalesce(un.id, ui.id) as user_id,
         coalesce(cn.id, ci.id) as category_id,
         coalesce(mn.id, mi.id) as payment_method_id,
         case when s.amount_text ~ '^[0-9]{1,10}(\.[0-9]{1,2})?$' and s.amount_text::numeric > 0
              then s.amount_text::numeric(12, 2) end as amount,
         false as duplicate
  from (select (r ->> 0)::integer as line, r ->> 1 as date_text, r ->> 2 as user_text,
               r ->> 3 as category_text, nullif(r ->> 4, '') as method_text,
               r ->> 5 as amount_text, public.csv_restore(nullif(r ->> 6, '')) as description,
               r ->> 7 as framing_error
        from jsonb_array_elements(p_rows) as r) s
  left join public.users un on lower(un.name) = lower(s.user_text)
  left join public.users ui on ui.id::text = s.user_text
  left join public.categories cn on cn.name = s.category_text
  left join public.categories ci on ci.id::text = s.category_text
  left join public.payment_methods mn on mn.name = s.method_text
  left join public.payment_methods mi on mi.id::text = s.method_text;

  select count(*), coalesce(json_agg(json_build_object('line', line, 'error', error) order by line), '[]')
    into bad, problems
  from (select line, case
          when framing_error is not null then framing_error
          when date is null and date_text ~ '^[0-9]{4}-'
               and left(date_text, 4)::integer not between 1900 and 2200
            then 'date must be between 1900-01-01 and 2200-12-31: ' || date_text
          when date is null then 'date must be a date in YYYY-MM-DD format: ' || coalesce(date_text, '')
          when user_id is null then 'unknown user: ' || coalesce(user_text, '')
          when category_id is null then 'unknown category: ' || coalesce(category_text, '')
          when method_text is not null and payment_method_id is null
            then 'unknown payment method: ' || method_text
          when amount is null
            then 'amount must be a number above 0 with at most 2 decimals: ' || coalesce(amount_text, '')
          when char_length(description) > 500 then 'description must be at most 500 characters'
        end as error
        from import_rows) checked
  where error is not null;
  if bad > 0 then
    return json_build_object('error', format('Nothing imported: %s bad line%s', bad,
                                             case when bad = 1 then '' else 's' end),
                             'lines', problems);
  end if;

  if p_skip_duplicates then
    update import_rows r set duplicate = true
    where exists (select 1 from public.expenses e
                  where e.user_id = r.user_id and e.date = r.date and e.amount = r.amount
                    and e.category_id = r.category_id
                    and e.payment_method_id is not distinct from r.payment_method_id
                    and e.description is not distinct from r.description);
  end if;
  select count(*), count(*) filter (where duplicate) into total, duplicates from import_rows;
  if p_dry_run then
    return json_build_object('message', format('Dry run: %s expense%s would be imported%s, nothing written',
                                               total - duplicates,
                                               case when total - duplicates = 1 then '' else 's' end,
                                               case when duplicates > 0
                                                    then format(' (%s duplicate%s skipped)', duplicates,
                                                               case when duplicates = 1 then '' else 's' end)
                                                    else '' end),
                             'would_import', total - duplicates);
  end if;
  insert into public.expenses (user_id, category_id, payment_method_id, amount, description,
                               date, created_by)
  select user_id, category_id, payment_method_id, amount, description, date, p_actor_id
  from import_rows where not duplicate order by line;
  get diagnostics written = row_count;
  return json_build_object('message', format('Imported %s expense%s%s', written,
                                             case when written = 1 then '' else 's' end,
                                             case when duplicates > 0
                                                  then format(' (%s duplicate%s skipped)', duplicates,
                                                               case when duplicates = 1 then '' else 's' end)
                                                  else '' end),
                           'imported', written);
end
$$;

revoke all on function public.csv_restore(text),
  public.import_expenses(bigint, jsonb, boolean, boolean)
  from public, anon, authenticated, service_role;
grant execute on function public.import_expenses(bigint, jsonb, boolean, boolean) to service_role;
