/**
 * Share links: the playground's whole state (every editor's text and the view) as JSON,
 * deflated with the browser's own CompressionStream('deflate-raw') and written base64url
 * into the URL fragment (`#s=...`). The fragment never reaches a server, so a shared
 * policy stays between the people who have the link.
 */
const PREFIX = '#s=';
const VIEWS = ['check', 'simulate', 'audit'];
const TEXTS = ['policy', 'manifests', 'cluster', 'pod'];

async function pipe(bytes, transform) {
  const stream = new Blob([bytes]).stream().pipeThrough(transform);
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

function toBase64url(bytes) {
  let binary = '';
  // In slices: String.fromCharCode(...all) overflows the stack on large states.
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function fromBase64url(text) {
  const binary = atob(text.replace(/-/g, '+').replace(/_/g, '/'));
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

/** The fragment for `state` ({view, fix, example, policy, manifests, cluster, pod}). */
export async function encodeState(state) {
  const picked = { v: 1, view: state.view, fix: !!state.fix, example: state.example ?? '' };
  for (const key of TEXTS) picked[key] = state[key] ?? '';
  const packed = await pipe(new TextEncoder().encode(JSON.stringify(picked)), new CompressionStream('deflate-raw'));
  return PREFIX + toBase64url(packed);
}

/** The state a fragment holds; null when it holds none; throws when it is damaged. */
export async function decodeState(hash) {
  if (!hash.startsWith(PREFIX)) return null;
  let state;
  try {
    const bytes = await pipe(fromBase64url(hash.slice(PREFIX.length)), new DecompressionStream('deflate-raw'));
    state = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    throw new Error('This share link is damaged (it may have been cut short when it was copied).');
  }
  if (state?.v !== 1 || !VIEWS.includes(state.view) || TEXTS.some((k) => typeof state[k] !== 'string')) {
    throw new Error('This share link is not one this playground understands.');
  }
  return state;
}
