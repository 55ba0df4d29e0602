-- 0005: a return type whose text PostgREST sends to the gateway as it is.
--
-- A function returning `json` is re-aggregated and re-parsed by PostgREST
-- (`json_agg(result)->0`): 1.1 s for the 24 MB list of 100k expenses. A function returning
-- this domain is a PostgREST 12 media type handler for `Accept: application/json`: its
-- text becomes the response body untouched (0.6 s for the same list). Only functions that
-- return this domain are affected; tables, views and every other function answer as before.
-- Idempotent: creates the domain only when it is missing.
do $$
begin
  if not exists (select 1 from pg_type t join pg_namespace n on n.oid = t.typnamespace
                 where n.nspname = 'public' and t.typname = 'application/json') then
    create domain public."application/json" as text;
  end if;
end
$$;
