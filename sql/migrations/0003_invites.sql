-- 0003: who may join the family, and a per-user cut-off for sessions.
--
-- invites: codes an admin creates with `scripts/users.py invite` for REGISTRATION_MODE=invite.
-- Only the SHA-256 of a code is stored (a code is 128 random bits, so a fast hash is enough
-- and a leaked table reveals no usable code); each is used at most once, before it expires.
-- users.sessions_revoked_at: `scripts/users.py revoke-sessions` sets it; every token of that
-- user issued at or before it is refused (checked by public.session_is_valid).
-- Idempotent: safe to run again, before and after the migration runner exists.

create table if not exists public.invites (
  id bigint generated always as identity primary key,
  code_sha256 text not null,
  note text,
  created_at timestamptz not null default now(),
  expires_at timestamptz not null,
  used_at timestamptz,
  used_by bigint references public.users (id) on delete set null
);

create unique index if not exists invites_code_sha256_key on public.invites (code_sha256);

do $$
begin
  if not exists (select 1 from pg_constraint where conname = 'invites_code_sha256_format') then
    alter table public.invites add constraint invites_code_sha256_format
      check (code_sha256 ~ '^[0-9a-f]{64}$');
  end if;
end
$$;

-- No policies: neither anon nor authenticated may see or change invites; the gateway's
-- service role goes through public.register_user_invited only.
alter table public.invites enable row level security;
revoke all on table public.invites from public, anon, authenticated;

alter table public.users add column if not exists sessions_revoked_at timestamptz;
