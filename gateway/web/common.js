// What both pages share: the API key (kept in this tab's sessionStorage only) and fetch with it.
const KEY_ITEM = 'latentwire.apiKey';

export function apiKey() {
  return sessionStorage.getItem(KEY_ITEM) ?? '';
}

export function setApiKey(key) {
  if (key) sessionStorage.setItem(KEY_ITEM, key);
  else sessionStorage.removeItem(KEY_ITEM);
}

export function authHeaders() {
  const key = apiKey();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

/** The error message of an OpenAI-shaped error body, else the status line. */
export async function errorText(res) {
  try {
    const body = await res.json();
    if (body?.error?.message) return `${res.status}: ${body.error.message}`;
  } catch {
    // not JSON
  }
  return `${res.status} ${res.statusText}`;
}

/**
 * Wires a key field: shown when the gateway answers 401 to `probePath` without one (it has API_KEYS), or
 * when a key is already set. `onChange` runs after the key changes.
 */
export async function keyField(input, box, probePath, onChange) {
  input.value = apiKey();
  input.addEventListener('change', () => {
    setApiKey(input.value.trim());
    onChange();
  });
  if (apiKey()) {
    box.hidden = false;
    return;
  }
  const res = await fetch(probePath);
  box.hidden = res.status !== 401;
}
