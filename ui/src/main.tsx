/** The Volume Hub's entry: log-in with a token, the session, the header and the hash routes to its pages. */
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { client, clientWith, prefetchVolumes, token, setUnauthorizedHandler, ApiError, type Status } from './api';
import { ClusterPage } from './pages/cluster';
import { VolumesPage } from './pages/volumes';
import { VolumePage } from './pages/volume';
import { JobsPage } from './pages/jobs';
import { TrashPage } from './pages/trash';
import './style.css';

/** A small boat on a wave (inline SVG: no font or image to load). */
function Logo() {
  return (
    <svg class="logo" width="18" height="18" viewBox="0 0 24 24" aria-hidden="true">
      <path d="M4 14h16l-2.5 4.5H6.5z" fill="currentColor" />
      <path d="M8 13V8h6l3 5z" fill="currentColor" opacity="0.7" />
      <path d="M2 21c2 0 2-1.2 4-1.2s2 1.2 4 1.2 2-1.2 4-1.2 2 1.2 4 1.2 2-1.2 4-1.2" stroke="currentColor" stroke-width="1.5" fill="none" />
    </svg>
  );
}

/** Who is logged in: the token's name and role (read tokens see no write actions), and the daemon's facts. */
export interface Session {
  status: Status;
  canWrite: boolean;
  refreshStatus: () => Promise<void>;
}

function useHash(): string {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const on = () => setHash(location.hash);
    window.addEventListener('hashchange', on);
    return () => window.removeEventListener('hashchange', on);
  }, []);
  return hash;
}

function Login({ onLogin, notice }: { onLogin: (t: string, s: Status) => void; notice?: string }) {
  const [value, setValue] = useState('');
  const [error, setError] = useState<string | undefined>(notice);
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    const t = value.trim();
    if (!t) return setError('Paste a token made with `ferry token create --role read|admin` on the ferryd host.');
    setBusy(true);
    try {
      const s = await clientWith(() => t).status();
      onLogin(t, s);
    } catch (err) {
      setError(err instanceof ApiError && err.status === 401 ? `Not logged in: ${err.message}` : err instanceof Error ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <div class="login">
      <form class="card" onSubmit={submit}>
        <h1>
          <Logo /> Ferry Volume Hub
        </h1>
        <p class="muted">Log in with an API token. Make one on the ferryd host: <code>ferry token create --role admin</code> (or <code>--role read</code> to only look).</p>
        <label for="token">Token</label>
        <input id="token" name="token" type="password" autocomplete="off" spellcheck={false} placeholder="ferry_…" value={value} onInput={(e) => setValue((e.target as HTMLInputElement).value)} />
        {error && (
          <div class="error" role="alert">
            {error}
          </div>
        )}
        <button type="submit" class="primary" disabled={busy}>
          {busy ? 'Checking…' : 'Log in'}
        </button>
      </form>
    </div>
  );
}

function App() {
  const hash = useHash();
  const [status, setStatus] = useState<Status>();
  const [notice, setNotice] = useState<string>();
  const [checking, setChecking] = useState(Boolean(token.get()));

  const logout = (why?: string) => {
    token.clear();
    setStatus(undefined);
    setNotice(why);
  };
  useEffect(() => {
    setUnauthorizedHandler(() => logout('Your token is no longer accepted (removed on the host?): log in again.'));
    if (token.get()) {
      // the volumes list is the default page: ask for it alongside the status, not after
      if (/^(#\/?(volumes)?)?$/.test(location.hash)) prefetchVolumes();
      client.status()
        .then(setStatus, () => undefined)
        .finally(() => setChecking(false));
    }
  }, []);

  if (checking) return <p class="muted pad">Loading…</p>;
  if (!status) {
    return (
      <Login
        notice={notice}
        onLogin={(t, s) => {
          token.set(t);
          setNotice(undefined);
          setStatus(s);
        }}
      />
    );
  }
  const session: Session = {
    status,
    canWrite: status.token?.role !== 'read',
    refreshStatus: async () => setStatus(await client.status()),
  };
  const [path, search] = (hash.replace(/^#/, '') || '/volumes').split('?') as [string, string | undefined];
  const params = new URLSearchParams(search ?? '');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  const section = parts[0] ?? 'volumes';
  let page;
  if (section === 'cluster') page = <ClusterPage session={session} />;
  else if (section === 'jobs') page = <JobsPage />;
  else if (section === 'trash') page = <TrashPage session={session} />;
  else if (section === 'volumes' && parts[1]) page = <VolumePage key={parts[1]} name={parts[1]} session={session} />;
  else page = <VolumesPage key={search ?? ''} backup={params.get('backup') ?? ''} />;
  const link = (to: string, label: string) => (
    <a href={`#/${to}`} class={section === to ? 'active' : ''}>
      {label}
    </a>
  );
  return (
    <div class="shell">
      <header class="top">
        <span class="brand">
          <Logo /> Ferry Volume Hub
        </span>
        <nav>
          {link('cluster', 'Cluster')}
          {link('volumes', 'Volumes')}
          {link('jobs', 'Jobs')}
          {link('trash', 'Trash')}
        </nav>
        <span class="who" title={`ferryd ${status.version} on ${status.node}`}>
          {status.token ? `${status.token.name} (${status.token.role})` : ''} · {status.node}
        </span>
        <button type="button" class="link" onClick={() => logout()}>
          Log out
        </button>
      </header>
      <main>{page}</main>
    </div>
  );
}

render(<App />, document.getElementById('app')!);
