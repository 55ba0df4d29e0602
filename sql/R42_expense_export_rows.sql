-- The XLSX export (issue 23): GET /api/expenses/export.xlsx. Repeatable (sql/README.md);
-- applied after R40_expenses.sql (search_pattern, search_fold, check_expense_filters,
-- export_page: the filtered page both exports share).

-- export_expenses_rows(filters, after, limit) -> {"rows": [[id, date, user, category,
--   payment_method, amount, description, created_at], ...], "last_date", "last_id"}: the
-- next `p_limit` rows of the CSV export (same filters, same order: date desc, id desc)
-- after the key (p_after_date, p_after_id), as values for the gateway's spreadsheet
-- writer: amounts as JSON numbers (trim_scale), texts as they are (a spreadsheet cell
-- written as a string is never a formula, so nothing is neutralised here).
create or replace function public.export_expenses_rows(
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
           json_build_array(p.id, p.date, p.user_name, p.category, p.payment_method,
                            trim_scale(p.amount), p.description, p.created_at) as row
    from public.export_page(p_user_id, p_category_id, p_date_from, p_date_to, p_after_date,
                            p_after_id, p_limit, p_payment_method_id, p_min_amount,
                            p_max_amount, pattern, category_ids, method_ids) p
  ), last_row as (
    select id, date from page order by date, id limit 1
  )
  select json_build_object(
           'rows', coalesce((select json_agg(row order by date desc, id desc) from page), '[]'),
           'last_date', (select date from last_row),
           'last_id', (select id from last_row))
    into result;
  return result;
end
$$;

revoke all on function
  public.export_expenses_rows(bigint, bigint, date, date, date, bigint, integer, bigint, numeric, numeric, text)
  from public, anon, authenticated, service_role;
grant execute on function
  public.export_expenses_rows(bigint, bigint, date, date, date, bigint, integer, bigint, numeric, numeric, text)
  to service_role;
