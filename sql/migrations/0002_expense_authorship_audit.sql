-- 0002: who recorded an expense, and the audit trail (issue 12).
-- Idempotent (add column if not exists, create ... if not exists), so it can run before and
-- after the versioned migration runner exists. Functions, triggers, policies and grants that
-- use these objects live in the repeatable file sql/expense_changes.sql.

-- expenses.created_by: the member who recorded the expense. Together with user_id it decides
-- who may change or delete it. Existing rows were recorded by their owner as far as anyone
-- knows, so they are back-filled with user_id — once, when the column is added.
-- No foreign key on purpose: a second expenses -> users relationship would make PostgREST's
-- embedding `users(name)` ambiguous (PGRST201) for every existing client. Identity ids are
-- never reused, so the id of a deleted recorder can never name someone else.
do $$
begin
  if not exists (select 1 from information_schema.columns
                 where table_schema = 'public' and table_name = 'expenses'
                   and column_name = 'created_by') then
    alter table public.expenses add column created_by bigint;
    update public.expenses set created_by = user_id;
  end if;
end
$$;
create index if not exists expenses_created_by_idx on public.expenses (created_by);

-- audit_log: one row per change of an expense and per login, failed login, logout and
-- registration, written in the same transaction as what it records. Append-only for every
-- API role; only the table owner prunes it (AUDIT_RETENTION_DAYS).
create table if not exists public.audit_log (
  id          bigint generated always as identity primary key,
  occurred_at timestamptz not null default now(),
  actor_id    bigint,                -- no foreign key: the trail outlives deleted users
  action      text not null constraint audit_log_action_format
                check (action ~ '^[a-z_]+\.[a-z_]+$'),
  target_id   bigint,                -- the expense or user the action is about
  request_id  text,                  -- the gateway's X-Request-ID
  client_addr text,                  -- the end user's address as the gateway saw it
  before      jsonb,                 -- updates and deletes: the row before
  after       jsonb                  -- creates and updates: the row after
);
create index if not exists audit_log_occurred_at_idx on public.audit_log (occurred_at);
create index if not exists audit_log_actor_idx on public.audit_log (actor_id, occurred_at);
create index if not exists audit_log_action_idx on public.audit_log (action, occurred_at);
create index if not exists audit_log_target_idx on public.audit_log (target_id);

alter table public.audit_log enable row level security;
-- Grants: sql/expense_changes.sql (repeatable, so it runs after supabase_schema.sql's
-- "grant all on all tables ... to service_role" every time and takes that back).
