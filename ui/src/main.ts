import { mount } from 'svelte';
import App from './App.svelte';
import { applyToDocument } from './lib/i18n';
import './app.css';

// The language (and writing direction) before anything is drawn.
applyToDocument();
const target = document.getElementById('app');
if (target) mount(App, { target });
