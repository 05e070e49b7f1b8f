var ae,k,Be,Vt,U,He,We,qe,ge,Z,q,Ve,ye,ve,be,Jt,ne={},re=[],Gt=/acit|ex(?:s|g|n|p|$)|rph|grid|ows|mnc|ntw|ine[ch]|zoo|^ord|itera/i,se=Array.isArray;function j(e,t){for(var n in t)e[n]=t[n];return e}function xe(e){e&&e.parentNode&&e.parentNode.removeChild(e)}function we(e,t,n){var r,o,a,s={};for(a in t)a=="key"?r=t[a]:a=="ref"?o=t[a]:s[a]=t[a];if(arguments.length>2&&(s.children=arguments.length>3?ae.call(arguments,2):n),typeof e=="function"&&e.defaultProps!=null)for(a in e.defaultProps)s[a]===void 0&&(s[a]=e.defaultProps[a]);return ee(e,s,r,o,null)}function ee(e,t,n,r,o){var a={type:e,props:t,key:n,ref:r,__k:null,__:null,__b:0,__e:null,__c:null,constructor:void 0,__v:o??++Be,__i:-1,__u:0};return o==null&&k.vnode!=null&&k.vnode(a),a}function ie(e){return e.children}function te(e,t){this.props=e,this.context=t}function I(e,t){if(t==null)return e.__?I(e.__,e.__i+1):null;for(var n;t<e.__k.length;t++)if((n=e.__k[t])!=null&&n.__e!=null)return n.__e;return typeof e.type=="function"?I(e):null}function Kt(e){if(e.__P&&e.__d){var t=e.__v,n=t.__e,r=[],o=[],a=j({},t);a.__v=t.__v+1,k.vnode&&k.vnode(a),ke(e.__P,a,t,e.__n,e.__P.namespaceURI,32&t.__u?[n]:null,r,n??I(t),!!(32&t.__u),o),a.__v=t.__v,a.__.__k[a.__i]=a,Ye(r,a,o),t.__e=t.__=null,a.__e!=n&&Je(a)}}function Je(e){if((e=e.__)!=null&&e.__c!=null)return e.__e=e.__c.base=null,e.__k.some(function(t){if(t!=null&&t.__e!=null)return e.__e=e.__c.base=t.__e}),Je(e)}function De(e){(!e.__d&&(e.__d=!0)&&U.push(e)&&!oe.__r++||He!=k.debounceRendering)&&((He=k.debounceRendering)||We)(oe)}function oe(){try{for(var e,t=1;U.length;)U.length>t&&U.sort(qe),e=U.shift(),t=U.length,Kt(e)}finally{U.length=oe.__r=0}}function Ge(e,t,n,r,o,a,s,l,p,u,_){var m,i,f,$,y,x,b=r&&r.__k||re,c=t.length;for(p=Xt(n,t,b,p,c),m=0;m<c;m++)(f=n.__k[m])!=null&&(i=f.__i!=-1&&b[f.__i]||ne,f.__i=m,x=ke(e,f,i,o,a,s,l,p,u,_),$=f.__e,f.ref&&i.ref!=f.ref&&(i.ref&&Se(i.ref,null,f),_.push(f.ref,f.__c||$,f)),y==null&&$!=null&&(y=$),4&f.__u?(p=Ke(f,p,e),i.__e&&(i.__e=null)):typeof f.type=="function"&&x!==void 0?p=x:$&&(p=$.nextSibling),f.__u&=-7);return n.__e=y,p}function Xt(e,t,n,r,o){var a,s,l,p,u,_=n.length,m=_,i=0;for(e.__k=new Array(o),a=0;a<o;a++)(s=t[a])!=null&&typeof s!="boolean"&&typeof s!="function"?(typeof s=="string"||typeof s=="number"||typeof s=="bigint"||s.constructor==String?s=e.__k[a]=ee(null,s,null,null,null):se(s)?s=e.__k[a]=ee(ie,{children:s},null,null,null):s.constructor===void 0&&s.__b>0?s=e.__k[a]=ee(s.type,s.props,s.key,s.ref?s.ref:null,s.__v):e.__k[a]=s,p=a+i,s.__=e,s.__b=e.__b+1,l=null,(u=s.__i=Yt(s,n,p,m))!=-1&&(m--,(l=n[u])&&(l.__u|=2)),l==null||l.__v==null?(u==-1&&(o>_?i--:o<_&&i++),typeof s.type!="function"&&(s.__u|=4)):u!=p&&(u==p-1?i--:u==p+1?i++:(u>p?i--:i++,s.__u|=4))):e.__k[a]=null;if(m)for(a=0;a<_;a++)(l=n[a])!=null&&!(2&l.__u)&&(l.__e==r&&(r=I(l)),Ze(l,l));return r}function Ke(e,t,n){var r,o;if(typeof e.type=="function"){for(r=e.__k,o=0;r&&o<r.length;o++)r[o]&&(r[o].__=e,t=Ke(r[o],t,n));return t}e.__e!=t&&(t&&e.type&&!t.parentNode&&(t=I(e)),t=n.insertBefore(e.__e,t||null));do t=t&&t.nextSibling;while(t!=null&&t.nodeType==8);return t}function Yt(e,t,n,r){var o,a,s,l=e.key,p=e.type,u=t[n],_=u!=null&&(2&u.__u)==0;if(u===null&&l==null||_&&l==u.key&&p==u.type)return n;if(r>(_?1:0)){for(o=n-1,a=n+1;o>=0||a<t.length;)if((u=t[s=o>=0?o--:a++])!=null&&!(2&u.__u)&&l==u.key&&p==u.type)return s}return-1}function Ie(e,t,n){t[0]=="-"?e.setProperty(t,n??""):e[t]=n==null?"":typeof n!="number"||Gt.test(t)?n:n+"px"}function Q(e,t,n,r,o){var a,s;e:if(t=="style")if(typeof n=="string")e.style.cssText=n;else{if(typeof r=="string"&&(e.style.cssText=r=""),r)for(t in r)n&&t in n||Ie(e.style,t,"");if(n)for(t in n)r&&n[t]==r[t]||Ie(e.style,t,n[t])}else if(t[0]=="o"&&t[1]=="n")a=t!=(t=t.replace(Ve,"$1")),s=t.toLowerCase(),t=s in e||t=="onFocusOut"||t=="onFocusIn"?s.slice(2):t.slice(2),e.l||(e.l={}),e.l[t+a]=n,n?r?n[q]=r[q]:(n[q]=ye,e.addEventListener(t,a?be:ve,a)):e.removeEventListener(t,a?be:ve,a);else{if(o=="http://www.w3.org/2000/svg")t=t.replace(/xlink(H|:h)/,"h").replace(/sName$/,"s");else if(t!="width"&&t!="height"&&t!="href"&&t!="list"&&t!="form"&&t!="tabIndex"&&t!="download"&&t!="rowSpan"&&t!="colSpan"&&t!="role"&&t!="popover"&&t in e)try{e[t]=n??"";break e}catch{}typeof n=="function"||(n==null||n===!1&&t[4]!="-"?e.removeAttribute(t):e.setAttribute(t,t=="popover"&&n==1?"":n))}}function ze(e){return function(t){if(this.l){var n=this.l[t.type+e];if(t[Z]==null)t[Z]=ye++;else if(t[Z]<n[q])return;return n(k.event?k.event(t):t)}}}function ke(e,t,n,r,o,a,s,l,p,u){var _,m,i,f,$,y,x,b,c,h,g,C,w,O,S,D,R=t.type;if(t.constructor!==void 0)return null;128&n.__u&&(p=!!(32&n.__u),a=[l=t.__e=n.__e]),(_=k.__b)&&_(t);e:if(typeof R=="function"){m=s.length;try{if(c=t.props,h=R.prototype&&R.prototype.render,g=(_=R.contextType)&&r[_.__c],C=_?g?g.props.value:_.__:r,n.__c?b=(i=t.__c=n.__c).__=i.__E:(h?t.__c=i=new R(c,C):(t.__c=i=new te(c,C),i.constructor=R,i.render=Zt),g&&g.sub(i),i.state||(i.state={}),i.__n=r,f=i.__d=!0,i.__h=[],i._sb=[]),h&&i.__s==null&&(i.__s=i.state),h&&R.getDerivedStateFromProps!=null&&(i.__s==i.state&&(i.__s=j({},i.__s)),j(i.__s,R.getDerivedStateFromProps(c,i.__s))),$=i.props,y=i.state,i.__v=t,f)h&&R.getDerivedStateFromProps==null&&i.componentWillMount!=null&&i.componentWillMount(),h&&i.componentDidMount!=null&&i.__h.push(i.componentDidMount);else{if(h&&R.getDerivedStateFromProps==null&&c!==$&&i.componentWillReceiveProps!=null&&i.componentWillReceiveProps(c,C),t.__v==n.__v||!i.__e&&i.shouldComponentUpdate!=null&&i.shouldComponentUpdate(c,i.__s,C)===!1){t.__v!=n.__v&&(i.props=c,i.state=i.__s,i.__d=!1),t.__e=n.__e,t.__k=n.__k,t.__k.some(function(B){B&&(B.__=t)}),re.push.apply(i.__h,i._sb),i._sb=[],i.__h.length&&s.push(i),l=I(n);break e}i.componentWillUpdate!=null&&i.componentWillUpdate(c,i.__s,C),h&&i.componentDidUpdate!=null&&i.__h.push(function(){i.componentDidUpdate($,y,x)})}if(i.context=C,i.props=c,i.__P=e,i.__e=!1,w=k.__r,O=0,h)i.state=i.__s,i.__d=!1,w&&w(t),_=i.render(i.props,i.state,i.context),re.push.apply(i.__h,i._sb),i._sb=[];else do i.__d=!1,w&&w(t),_=i.render(i.props,i.state,i.context),i.state=i.__s;while(i.__d&&++O<25);i.state=i.__s,i.getChildContext!=null&&(r=j(j({},r),i.getChildContext())),h&&!f&&i.getSnapshotBeforeUpdate!=null&&(x=i.getSnapshotBeforeUpdate($,y)),S=_!=null&&_.type===ie&&_.key==null?Qe(_.props.children):_,l=Ge(e,se(S)?S:[S],t,n,r,o,a,s,l,p,u),i.base=t.__e,t.__u&=-161,i.__h.length&&s.push(i),b&&(i.__E=i.__=null)}catch(B){if(s.length=m,t.__v=null,p||a!=null){if(B.then){for(t.__u|=p?160:128;l&&l.nodeType==8&&l.nextSibling;)l=l.nextSibling;a!=null&&(a[a.indexOf(l)]=null),t.__e=l}else if(a!=null)for(D=a.length;D--;)xe(a[D])}else t.__e=n.__e;t.__k==null&&(t.__k=n.__k||[]),B.then||Xe(t),k.__e(B,t,n)}}else a==null&&t.__v==n.__v?(t.__k=n.__k,t.__e=n.__e):l=t.__e=Qt(n.__e,t,n,r,o,a,s,p,u);return(_=k.diffed)&&_(t),128&t.__u?void 0:l}function Xe(e){e&&(e.__c&&(e.__c.__e=!0),e.__k&&e.__k.some(Xe))}function Ye(e,t,n){for(var r=0;r<n.length;r++)Se(n[r],n[++r],n[++r]);k.__c&&k.__c(t,e),e.some(function(o){try{e=o.__h,o.__h=[],e.some(function(a){a.call(o)})}catch(a){k.__e(a,o.__v)}})}function Qe(e){return typeof e!="object"||e==null||e.__b>0?e:se(e)?e.map(Qe):e.constructor!==void 0?null:j({},e)}function Qt(e,t,n,r,o,a,s,l,p){var u,_,m,i,f,$,y,x=n.props||ne,b=t.props,c=t.type;if(c=="svg"?o="http://www.w3.org/2000/svg":c=="math"?o="http://www.w3.org/1998/Math/MathML":o||(o="http://www.w3.org/1999/xhtml"),a!=null){for(u=0;u<a.length;u++)if((f=a[u])&&"setAttribute"in f==!!c&&(c?f.localName==c:f.nodeType==3)){e=f,a[u]=null;break}}if(e==null){if(c==null)return document.createTextNode(b);e=document.createElementNS(o,c,b.is&&b),l&&(k.__m&&k.__m(t,a),l=!1),a=null}if(c==null)x===b||l&&e.data==b||(e.data=b);else{if(a=c=="textarea"&&b.defaultValue!=null?null:a&&ae.call(e.childNodes),!l&&a!=null)for(x={},u=0;u<e.attributes.length;u++)x[(f=e.attributes[u]).name]=f.value;for(u in x)f=x[u],u=="dangerouslySetInnerHTML"?m=f:u=="children"||u in b||u=="value"&&"defaultValue"in b||u=="checked"&&"defaultChecked"in b||Q(e,u,null,f,o);for(u in b)f=b[u],u=="children"?i=f:u=="dangerouslySetInnerHTML"?_=f:u=="value"?$=f:u=="checked"?y=f:l&&typeof f!="function"||x[u]===f||Q(e,u,f,x[u],o);if(_)l||m&&(_.__html==m.__html||_.__html==e.innerHTML)||(e.innerHTML=_.__html),t.__k=[];else if(m&&(e.innerHTML=""),Ge(t.type=="template"?e.content:e,se(i)?i:[i],t,n,r,c=="foreignObject"?"http://www.w3.org/1999/xhtml":o,a,s,a?a[0]:n.__k&&I(n,0),l,p),a!=null)for(u=a.length;u--;)xe(a[u]);l&&c!="textarea"||(u="value",c=="progress"&&$==null?e.removeAttribute("value"):$!=null&&($!==e[u]||c=="progress"&&!$||c=="option"&&$!=x[u])&&Q(e,u,$,x[u],o),u="checked",y!=null&&y!=e[u]&&Q(e,u,y,x[u],o))}return e}function Se(e,t,n){try{if(typeof e=="function"){var r=typeof e.__u=="function";r&&e.__u(),r&&t==null||(e.__u=e(t))}else e.current=t}catch(o){k.__e(o,n)}}function Ze(e,t,n){var r,o;if(k.unmount&&k.unmount(e),(r=e.ref)&&(r.current&&r.current!=e.__e||Se(r,null,t)),(r=e.__c)!=null){if(r.componentWillUnmount)try{r.componentWillUnmount()}catch(a){k.__e(a,t)}r.base=r.__P=r.__n=null}if(r=e.__k)for(o=0;o<r.length;o++)r[o]&&Ze(r[o],t,n||typeof e.type!="function");n||xe(e.__e),e.__c=e.__=e.__e=void 0}function Zt(e,t,n){return this.constructor(e,n)}function et(e,t,n){var r,o,a,s;t==document&&(t=document.documentElement),k.__&&k.__(e,t),o=(r=typeof n=="function")?null:n&&n.__k||t.__k,a=[],s=[],ke(t,e=(!r&&n||t).__k=we(ie,null,[e]),o||ne,ne,t.namespaceURI,!r&&n?[n]:o?null:t.firstChild?ae.call(t.childNodes):null,a,!r&&n?n:o?o.__e:t.firstChild,r,s),Ye(a,e,s),e.props.children=null}ae=re.slice,k={__e:function(e,t,n,r){for(var o,a,s;t=t.__;)if((o=t.__c)&&!o.__)try{if((a=o.constructor)&&a.getDerivedStateFromError!=null&&(o.setState(a.getDerivedStateFromError(e)),s=o.__d),o.componentDidCatch!=null&&(o.componentDidCatch(e,r||{}),s=o.__d),s)return o.__E=o}catch(l){e=l}throw e}},Be=0,Vt=function(e){return e!=null&&e.constructor===void 0},te.prototype.setState=function(e,t){var n;n=this.__s!=null&&this.__s!=this.state?this.__s:this.__s=j({},this.state),typeof e=="function"&&(e=e(j({},n),this.props)),e&&j(n,e),e!=null&&this.__v&&(t&&this._sb.push(t),De(this))},te.prototype.forceUpdate=function(e){this.__v&&(this.__e=!0,e&&this.__h.push(e),De(this))},te.prototype.render=ie,U=[],We=typeof Promise=="function"?Promise.prototype.then.bind(Promise.resolve()):setTimeout,qe=function(e,t){return e.__v.__b-t.__v.__b},oe.__r=0,ge=Math.random().toString(8),Z="__d"+ge,q="__a"+ge,Ve=/(PointerCapture)$|Capture$/i,ye=0,ve=ze(!1),be=ze(!0),Jt=0;var V,E,Ce,tt,J=0,ct=[],T=k,nt=T.__b,rt=T.__r,ot=T.diffed,at=T.__c,st=T.unmount,it=T.__;function Te(e,t){T.__h&&T.__h(E,e,J||t),J=0;var n=E.__H||(E.__H={__:[],__h:[]});return e>=n.__.length&&n.__.push({}),n.__[e]}function v(e){return J=1,en(pt,e)}function en(e,t,n){var r=Te(V++,2);if(r.t=e,!r.__c&&(r.__=[n?n(t):pt(void 0,t),function(l){var p=r.__N?r.__N[0]:r.__[0],u=r.t(p,l);p!==u&&(r.__N=[u,r.__[1]],r.__c.setState({}))}],r.__c=E,!E.__f)){var o=function(l,p,u){if(!r.__c.__H)return!0;var _=!1,m=r.__c.props!==l;if(r.__c.__H.__.some(function(f){if(f.__N){_=!0;var $=f.__[0];f.__=f.__N,f.__N=void 0,$!==f.__[0]&&(m=!0)}}),a){var i=a.call(this,l,p,u);return _?i||m:i}return!_||m};E.__f=!0;var a=E.shouldComponentUpdate,s=E.componentWillUpdate;E.componentWillUpdate=function(l,p,u){if(this.__e){var _=a;a=void 0,o(l,p,u),a=_}s&&s.call(this,l,p,u)},E.shouldComponentUpdate=o}return r.__N||r.__}function P(e,t){var n=Te(V++,3);!T.__s&&ut(n.__H,t)&&(n.__=e,n.u=t,E.__H.__h.push(n))}function G(e){return J=5,ce(function(){return{current:e}},[])}function ce(e,t){var n=Te(V++,7);return ut(n.__H,t)&&(n.__=e(),n.__H=t,n.__h=e),n.__}function dt(e,t){return J=8,ce(function(){return e},t)}function tn(){for(var e;e=ct.shift();){var t=e.__H;if(e.__P&&t)try{t.__h.some(le),t.__h.some(Ee),t.__h=[]}catch(n){t.__h=[],T.__e(n,e.__v)}}}T.__b=function(e){E=null,nt&&nt(e)},T.__=function(e,t){e&&t.__k&&t.__k.__m&&(e.__m=t.__k.__m),it&&it(e,t)},T.__r=function(e){rt&&rt(e),V=0;var t=(E=e.__c).__H;t&&(Ce===E?(t.__h=[],E.__h=[],t.__.some(function(n){n.__N&&(n.__=n.__N),n.u=n.__N=void 0})):(t.__h.some(le),t.__h.some(Ee),t.__h=[],V=0)),Ce=E},T.diffed=function(e){ot&&ot(e);var t=e.__c;t&&t.__H&&(t.__H.__h.length&&(ct.push(t)!==1&&tt===T.requestAnimationFrame||((tt=T.requestAnimationFrame)||nn)(tn)),t.__H.__.some(function(n){n.u&&(n.__H=n.u,n.u=void 0)})),Ce=E=null},T.__c=function(e,t){t.some(function(n){try{n.__h.some(le),n.__h=n.__h.filter(function(r){return!r.__||Ee(r)})}catch(r){t.some(function(o){o.__h&&(o.__h=[])}),t=[],T.__e(r,n.__v)}}),at&&at(e,t)},T.unmount=function(e){st&&st(e);var t,n=e.__c;n&&n.__H&&(n.__H.__.some(function(r){try{le(r)}catch(o){t=o}}),n.__H=void 0,t&&T.__e(t,n.__v))};var lt=typeof requestAnimationFrame=="function";function nn(e){var t,n=function(){clearTimeout(r),lt&&cancelAnimationFrame(t),setTimeout(e)},r=setTimeout(n,35);lt&&(t=requestAnimationFrame(n))}function le(e){var t=E,n=e.__c;typeof n=="function"&&(e.__c=void 0,n()),E=t}function Ee(e){var t=E;e.__c=e.__(),E=t}function ut(e,t){return!e||e.length!==t.length||t.some(function(n,r){return n!==e[r]})}function pt(e,t){return typeof t=="function"?t(e):t}var Pe="spillway.token",de=sessionStorage.getItem(Pe)||"",Le=new Set,Oe=class extends Error{constructor(t,n,r){super(r),this.status=t,this.code=n}};function Me(){return de}function W(e){de=e,e?sessionStorage.setItem(Pe,e):sessionStorage.removeItem(Pe)}function ft(e){return Le.add(e),()=>Le.delete(e)}function ue(){return de?{Authorization:`Bearer ${de}`}:{}}async function _t(e){let t="http_"+e.status,n=e.statusText||`HTTP ${e.status}`;try{let o=await e.json();o&&o.error&&({code:t,message:n}=o.error)}catch{}let r=new Oe(e.status,t,n);return e.status===401&&Le.forEach(o=>o(r)),r}async function L(e,{method:t="GET",body:n,signal:r}={}){let o={...ue()};n!==void 0&&(o["Content-Type"]="application/json");let a=await fetch(e,{method:t,headers:o,signal:r,body:n===void 0?void 0:JSON.stringify(n)});if(!a.ok)throw await _t(a);return a.json()}async function mt(e,t){let n=await fetch(e,{headers:ue(),signal:t});if(!n.ok)throw await _t(n);return URL.createObjectURL(await n.blob())}var $t=function(e,t,n,r){var o;t[0]=0;for(var a=1;a<t.length;a++){var s=t[a++],l=t[a]?(t[0]|=s?1:2,n[t[a++]]):t[++a];s===3?r[0]=l:s===4?r[1]=Object.assign(r[1]||{},l):s===5?(r[1]=r[1]||{})[t[++a]]=l:s===6?r[1][t[++a]]+=l+"":s?(o=e.apply(l,$t(e,l,n,["",null])),r.push(o),l[0]?t[0]|=2:(t[a-2]=0,t[a]=o)):r.push(l)}return r},ht=new Map;function gt(e){var t=ht.get(this);return t||(t=new Map,ht.set(this,t)),(t=$t(this,t.get(e)||(t.set(e,t=function(n){for(var r,o,a=1,s="",l="",p=[0],u=function(i){a===1&&(i||(s=s.replace(/^\s*\n\s*|\s*\n\s*$/g,"")))?p.push(0,i,s):a===3&&(i||s)?(p.push(3,i,s),a=2):a===2&&s==="..."&&i?p.push(4,i,0):a===2&&s&&!i?p.push(5,0,!0,s):a>=5&&((s||!i&&a===5)&&(p.push(a,0,s,o),a=6),i&&(p.push(a,i,0,o),a=6)),s=""},_=0;_<n.length;_++){_&&(a===1&&u(),u(_));for(var m=0;m<n[_].length;m++)r=n[_][m],a===1?r==="<"?(u(),p=[p],a=3):s+=r:a===4?s==="--"&&r===">"?(a=1,s=""):s=r+s[0]:l?r===l?l="":s+=r:r==='"'||r==="'"?l=r:r===">"?(u(),a=1):a&&(r==="="?(a=5,o=s,s=""):r==="/"&&(a<5||n[_][m+1]===">")?(u(),a===3&&(p=p[0]),a=p,(p=p[0]).push(2,0,a),a=0):r===" "||r==="	"||r===`
`||r==="\r"?(u(),a=2):s+=r),a===3&&s==="!--"&&(a=4,p=p[0])}return u(),p}(e)),t),arguments,[])).length>1?t:t[0]}var d=gt.bind(we);function A(e){if(e==null)return"";let t=Math.max(0,Math.round(e));return t<60?`${t}s`:t<3600?`${Math.floor(t/60)}m ${t%60}s`:t<86400?`${Math.floor(t/3600)}h ${Math.floor(t%3600/60)}m`:`${Math.floor(t/86400)}d ${Math.floor(t%86400/3600)}h`}function F(e){return e==null?"":A(Date.now()/1e3-e)}function pe(e){return e==null?"":new Date(e*1e3).toLocaleTimeString()}function K(e){if(e==null)return"";let t=["B","KiB","MiB","GiB","TiB"],n=e,r=0;for(;n>=1024&&r<t.length-1;)n/=1024,r+=1;return`${n.toFixed(r?1:0)} ${t[r]}`}function Re(e){return`${Math.round((e||0)*100)}%`}function X(e){let t=[...e].sort((o,a)=>o-a),n=[],r=0;for(;r<t.length;){let o=r;for(;o+1<t.length&&t[o+1]===t[o]+1;)o+=1;n.push(o>r?`${t[r]}-${t[o]}`:`${t[r]}`),r=o+1}return n.join(",")}var vt={w:"waiting",s:"dispatched",r:"running",d:"done",f:"failed"},bt={w:"#c9ced6",s:"#8fb8e8",r:"#2f7fd8",d:"#2e9e5b",f:"#d64541"};function rn(e){return e>4e3?7:e>1e3?10:e>200?14:22}function on(e){let t=new Int32Array(e.frames.length),n=0;return e.tasks.size.forEach((r,o)=>{t.fill(o,n,n+r),n+=r}),t}function yt({grid:e,selected:t,onSelect:n}){let r=G(null),o=G(null),[a,s]=v(800),[l,p]=v(null),u=ce(()=>on(e),[e]),_=e.frames.length,m=rn(_),i=Math.max(1,Math.floor(a/m)),f=Math.ceil(_/i);P(()=>{let c=new ResizeObserver(h=>s(Math.floor(h[0].contentRect.width)));return c.observe(o.current),()=>c.disconnect()},[]),P(()=>{let c=r.current,h=window.devicePixelRatio||1;c.width=i*m*h,c.height=f*m*h,c.style.width=`${i*m}px`,c.style.height=`${f*m}px`;let g=c.getContext("2d");g.setTransform(h,0,0,h,0,0),g.clearRect(0,0,i*m,f*m);let C=m>8?1:.5;for(let[w,O]of Object.entries(bt)){g.fillStyle=O;for(let S=e.states.indexOf(w);S!==-1;S=e.states.indexOf(w,S+1))g.fillRect(S%i*m,Math.floor(S/i)*m,m-C,m-C)}t.size&&(g.strokeStyle="#111",g.lineWidth=2,e.frames.forEach((w,O)=>{t.has(w)&&g.strokeRect(O%i*m+1,Math.floor(O/i)*m+1,m-3,m-3)}))},[e,i,f,m,t]);let $=c=>{let h=r.current.getBoundingClientRect(),g=Math.floor((c.clientX-h.left)/m),w=Math.floor((c.clientY-h.top)/m)*i+g;return g<i&&w>=0&&w<_?w:null},y=c=>{let h=$(c);if(h===null)return p(null);let g=o.current.getBoundingClientRect();p({i:h,x:c.clientX-g.left+14,y:c.clientY-g.top+14})},x=c=>{let h=$(c);h!==null&&n(e.frames[h],c.shiftKey)},b=null;if(l){let c=u[l.i],h=e.tasks,g=h.server[c]>=0?e.servers[h.server[c]]:"\u2014",C=h.started[c]==null?null:e.time_base+h.started[c],w=h.finished[c]==null?null:e.time_base+h.finished[c];b=d`<div class="tooltip" id="grid-tooltip" style=${{left:`${l.x}px`,top:`${l.y}px`}}>
      <b>frame ${e.frames[l.i]}</b> · ${vt[e.states[l.i]]}<br />
      task ${h.index[c]} · attempt ${h.attempt[c]}<br />
      server ${g}<br />
      ${C?d`started ${pe(C)}${w?d` · took ${A(w-C)}`:""}`:"not started"}
    </div>`}return d`<div class="grid-box" ref=${o} onMouseLeave=${()=>p(null)}>
    <canvas id="frame-grid" ref=${r} data-states=${e.states} onMouseMove=${y} onClick=${x}></canvas>
    ${b}
    <div class="legend">
      ${Object.entries(vt).map(([c,h])=>d`<span><i style=${{background:bt[c]}}></i>${h}</span>`)}
      ${t.size?d`<span class="selection">selected: ${X(t)}</span>`:d`<span class="dim">click frames to select, shift-click for a range</span>`}
    </div>
  </div>`}async function wt(e,t){let n=e.getReader(),r;for(;!(r=await n.read()).done;)t(r.value)}function kt(e){let t,n,r,o=!1;return function(s){t===void 0?(t=s,n=0,r=-1):t=an(t,s);let l=t.length,p=0;for(;n<l;){o&&(t[n]===10&&(p=++n),o=!1);let u=-1;for(;n<l&&u===-1;++n)switch(t[n]){case 58:r===-1&&(r=n-p);break;case 13:o=!0;case 10:u=n;break}if(u===-1)break;e(t.subarray(p,u),r),p=n,r=-1}p===l?t=void 0:p!==0&&(t=t.subarray(p),n-=p)}}function St(e,t,n){let r=xt(),o=new TextDecoder;return function(s,l){if(s.length===0)n?.(r),r=xt();else if(l>0){let p=o.decode(s.subarray(0,l)),u=l+(s[l+1]===32?2:1),_=o.decode(s.subarray(u));switch(p){case"data":r.data=r.data?r.data+`
`+_:_;break;case"event":r.event=_;break;case"id":e(r.id=_);break;case"retry":let m=parseInt(_,10);isNaN(m)||t(r.retry=m);break}}}}function an(e,t){let n=new Uint8Array(e.length+t.length);return n.set(e),n.set(t,e.length),n}function xt(){return{data:"",event:"",id:"",retry:void 0}}var sn=function(e,t){var n={};for(var r in e)Object.prototype.hasOwnProperty.call(e,r)&&t.indexOf(r)<0&&(n[r]=e[r]);if(e!=null&&typeof Object.getOwnPropertySymbols=="function")for(var o=0,r=Object.getOwnPropertySymbols(e);o<r.length;o++)t.indexOf(r[o])<0&&Object.prototype.propertyIsEnumerable.call(e,r[o])&&(n[r[o]]=e[r[o]]);return n},fe="text/event-stream",ln=1e3,Ct="last-event-id";function je(e,t){var{signal:n,headers:r,onopen:o,onmessage:a,onclose:s,onerror:l,openWhenHidden:p,fetch:u}=t,_=sn(t,["signal","headers","onopen","onmessage","onclose","onerror","openWhenHidden","fetch"]);return new Promise((m,i)=>{let f=Object.assign({},r);f.accept||(f.accept=fe);let $;function y(){$.abort(),document.hidden||C()}p||document.addEventListener("visibilitychange",y);let x=ln,b=0;function c(){document.removeEventListener("visibilitychange",y),window.clearTimeout(b),$.abort()}n?.addEventListener("abort",()=>{c(),m()});let h=u??window.fetch,g=o??cn;async function C(){var w;$=new AbortController;try{let O=await h(e,Object.assign(Object.assign({},_),{headers:f,signal:$.signal}));await g(O),await wt(O.body,kt(St(S=>{S?f[Ct]=S:delete f[Ct]},S=>{x=S},a))),s?.(),c(),m()}catch(O){if(!$.signal.aborted)try{let S=(w=l?.(O))!==null&&w!==void 0?w:x;window.clearTimeout(b),b=window.setTimeout(C,S)}catch(S){c(),i(S)}}}C()})}function cn(e){let t=e.headers.get("content-type");if(!t?.startsWith(fe))throw new Error(`Expected content-type to be ${fe}, Actual: ${t}`)}var Ae=new Set,z=null,Et=!1,Fe=new Set,_e=class extends Error{};function Y(e){Et=e,Fe.forEach(t=>t(e))}function dn(e){Ae.forEach(t=>t(e))}function Tt(e){z&&z.abort(),z=new AbortController,je("/api/v1/events",{headers:ue(),signal:z.signal,openWhenHidden:!0,async onopen(t){if(t.status===401)throw e(),new _e("unauthorized");if(!t.ok)throw new Error(`event stream: HTTP ${t.status}`);Y(!0)},onmessage(t){if(!t.event)return;let n=t.data?JSON.parse(t.data):{};dn({type:t.event,...n})},onclose(){throw Y(!1),new Error("event stream closed")},onerror(t){if(Y(!1),t instanceof _e)throw t;return 2e3}}).catch(()=>Y(!1))}function Pt(){z&&z.abort(),z=null,Y(!1)}function Lt(){let[e,t]=v(Et);return P(()=>(Fe.add(t),()=>Fe.delete(t)),[]),e}function H(e,t,n,r=500){P(()=>{let o={timer:null,last:0,running:!1,again:!1},a=!0,s=async()=>{if(a){if(o.running){o.again=!0;return}o.running=!0,o.last=Date.now();try{await e()}finally{o.running=!1,o.again&&a&&(o.again=!1,l())}}},l=()=>{if(o.timer)return;let u=Math.max(0,o.last+r-Date.now());o.timer=setTimeout(()=>{o.timer=null,s()},u)},p=u=>{(u.type==="hello"||t(u))&&l()};return Ae.add(p),s(),()=>{a=!1,Ae.delete(p),clearTimeout(o.timer),o.timer=null}},n)}function N({state:e}){return d`<span class=${`badge state-${e}`}>${e}</span>`}function he({job:e,wide:t}){let n=e.progress,r=n.tasks,o=Math.max(1,r.waiting+r.dispatched+r.running+r.done+r.failed),a=(s,l,p)=>s?d`<span class=${l} style=${{width:`${100*s/o}%`}} title=${`${s} ${p}`}></span>`:null;return d`<div class=${t?"progress wide":"progress"}>
    <div class="bar">
      ${a(r.done,"done","tasks done")}${a(r.running+r.dispatched,"running","tasks running")}
      ${a(r.failed,"failed","tasks failed")}
    </div>
    <span class="counts">
      <b>${n.frames_done}/${n.frames_total}</b>
      <span class="c-done" title="tasks done">${r.done}✓</span>
      <span class="c-running" title="tasks running">${r.running+r.dispatched}▶</span>
      <span class="c-failed" title="tasks failed">${r.failed}✗</span>
      <span class="c-waiting" title="tasks waiting">${r.waiting}◌</span>
    </span>
  </div>`}function M({error:e}){return e?d`<div class="error" role="alert">${e.message||String(e)}</div>`:null}var me=null;function $e(e,t="Confirm"){return new Promise(n=>me&&me({message:e,confirmLabel:t,resolve:n}))}function Ot(){let[e,t]=v(null);if(P(()=>(me=t,()=>me=null),[]),!e)return null;let n=r=>{t(null),e.resolve(r)};return d`<div class="overlay" onClick=${()=>n(!1)}>
    <div class="dialog" role="dialog" onClick=${r=>r.stopPropagation()}>
      <p>${e.message}</p>
      <div class="buttons">
        <button id="confirm-cancel" onClick=${()=>n(!1)}>Keep</button>
        <button id="confirm-ok" class="danger" onClick=${()=>n(!0)}>${e.confirmLabel}</button>
      </div>
    </div>
  </div>`}var Rt=50,un=["","queued","running","paused","done","failed","cancelled"],pn=["","builtin","povray","blender"],fn=[["name","Name"],["state","State"],[null,"Progress"],[null,"Package"],[null,"Placement"],["priority","Priority"],[null,"Owner"],["created","Age"],[null,"ETA"]];function Ne(e){return e.origin_job_id?`\u2190 from ${e.origin_site}`:e.placement==="local"?"local":`\u2192 ${e.placement}${e.remote_job_id?` (${e.remote_job_id})`:""}`}function _n(e,t,n){let r=new URLSearchParams({limit:Rt,offset:n,sort:t});for(let[o,a]of Object.entries(e))a&&r.set(o,a);return r.toString()}var Mt=["state","package","placement","owner","q"];function jt({peers:e,initial:t}){let[n,r]=v(Object.fromEntries(Mt.map(c=>[c,t[c]||""]))),[o,a]=v(t.sort||"-created"),[s,l]=v(Number(t.offset)||0),[p,u]=v(null),[_,m]=v(null),[i,f]=v(Date.now()/1e3),$=_n(n,o,s);P(()=>{let c=new URLSearchParams;for(let g of Mt)n[g]&&c.set(g,n[g]);o!=="-created"&&c.set("sort",o),s&&c.set("offset",s);let h=`#/jobs${c.toString()?`?${c}`:""}`;location.hash!==h&&history.replaceState(null,"",h)},[$]),H(async()=>{try{u(await L(`/api/v1/jobs?${$}`)),f(Date.now()/1e3),m(null)}catch(c){m(c)}},c=>c.type==="change"&&(c.all||c.jobs.length>0),[$],1e3);let y=c=>h=>{r({...n,[c]:h.target.value}),l(0)},x=c=>{a(o===`-${c}`?c:`-${c}`),l(0)},b=p&&p.page;return d`<section id="jobs-view">
    <div class="filters">
      <input id="job-search" type="search" placeholder="Search name or id" value=${n.q} onInput=${y("q")} />
      <label>State <select id="filter-state" value=${n.state} onChange=${y("state")}>
        ${un.map(c=>d`<option value=${c}>${c||"any"}</option>`)}
      </select></label>
      <label>Package <select id="filter-package" value=${n.package} onChange=${y("package")}>
        ${pn.map(c=>d`<option value=${c}>${c||"any"}</option>`)}
      </select></label>
      <label>Placement <select id="filter-placement" value=${n.placement} onChange=${y("placement")}>
        <option value="">any</option><option value="local">local</option>
        <option value="forwarded">forwarded to a peer</option><option value="accepted">accepted from a peer</option>
        ${[...new Set([...e||[],...t.placement?[t.placement]:[]])].filter(c=>!["local","forwarded","accepted"].includes(c)).map(c=>d`<option value=${c}>peer ${c}</option>`)}
      </select></label>
      <input id="filter-owner" placeholder="Owner" value=${n.owner} onInput=${y("owner")} size="10" />
    </div>
    <${M} error=${_} />
    <table class="jobs">
      <thead><tr>
        ${fn.map(([c,h])=>c?d`<th class="sortable" onClick=${()=>x(c)}>${h}${o===c?" \u25B2":o===`-${c}`?" \u25BC":""}</th>`:d`<th>${h}</th>`)}
      </tr></thead>
      <tbody>
        ${p&&p.jobs.map(c=>d`<tr class="job-row" data-job=${c.id} key=${c.id}>
            <td><a href=${`#/job/${c.id}`}>${c.name}</a><div class="dim mono">${c.id}</div></td>
            <td><${N} state=${c.state} />
              ${c.why_waiting&&d`<div class="dim small why">${c.why_waiting}</div>`}
              ${c.state==="failed"&&c.error&&d`<div class="error small">${c.error}</div>`}</td>
            <td><${he} job=${c} /></td>
            <td class="mono">${c.requirement}</td>
            <td class="placement">${Ne(c)}${c.remote&&c.remote.frames_done!=null?d`<div class="dim small">remote ${c.remote.state||""} ${c.remote.frames_done}/${c.frame_count}</div>`:null}</td>
            <td>${c.priority}</td>
            <td>${c.owner}</td>
            <td title=${new Date(c.created_at*1e3).toLocaleString()}>${A(i-c.created_at)}</td>
            <td>${c.eta_s!=null?A(c.eta_s):""}</td>
          </tr>`)}
      </tbody>
    </table>
    ${p&&p.jobs.length===0&&d`<p class="empty">No jobs match.</p>`}
    ${b&&d`<div class="pager">
      <button disabled=${s===0} onClick=${()=>l(Math.max(0,s-Rt))}>‹ Newer</button>
      <span id="page-info">${b.total?`${s+1}\u2013${s+p.jobs.length} of ${b.total}`:"0 jobs"}</span>
      <button disabled=${b.next_offset==null} onClick=${()=>l(b.next_offset)}>Older ›</button>
    </div>`}
  </section>`}var mn=256*1024;function At(e){return typeof e=="object"&&e!==null?e.attempt:e}function Ft({jobId:e,task:t,features:n,onClose:r}){let[o,a]=v(null),[s,l]=v({text:"",meta:null,error:null}),p=G(null),u=t.attempt>0;P(()=>{if(!n.logs||!u)return;let i=new AbortController,f="",$=!0;return(async()=>{let y=0,x=`/api/v1/jobs/${e}/tasks/${t.index}/log`;for(;$;){let b=new URLSearchParams({offset:y});o!=null&&b.set("attempt",o),y>0&&b.set("wait",10);let c;try{c=await L(`${x}?${b}`,{signal:i.signal})}catch(h){$&&l({text:f,meta:null,error:h});return}if(f=(f+c.text).slice(-mn),l({text:f,meta:c,error:null}),c.complete)return;y=c.next_offset}})(),()=>{$=!1,i.abort()}},[e,t.index,o,n.logs,u]),P(()=>{p.current&&(p.current.scrollTop=p.current.scrollHeight)},[s.text]);let _=s.meta,m=n.logs?s.text:t.log_tail||"";return d`<section class="log-panel" id="log-panel">
    <header>
      <b>Log of task ${t.index}</b> (frames ${t.frames}) · ${t.state}
      ${_&&_.attempts&&_.attempts.length>1&&d`<select id="log-attempt" value=${o??_.attempt} onChange=${i=>a(Number(i.target.value))}>
        ${_.attempts.map(i=>d`<option value=${At(i)}>attempt ${At(i)}</option>`)}
      </select>`}
      ${_&&d`<span class="dim"> on ${_.server||"\u2014"}${_.complete?"":" \xB7 live"}</span>`}
      ${_&&_.truncated_bytes?d`<span class="dim"> · first ${_.truncated_bytes} bytes not kept</span>`:null}
      <button class="close" onClick=${r}>×</button>
    </header>
    ${t.error&&d`<div class="error" id="task-error">${t.error}</div>`}
    ${!n.logs&&d`<div class="dim small">The last lines the server reported for this task.</div>`}
    ${s.error&&d`<div class="error">${s.error.message}</div>`}
    <pre ref=${p} id="log-text">${u?m||"(no output)":"(not started yet)"}</pre>
  </section>`}function hn(e){return(e.latest||[]).map(t=>({frame:t.frame,version:t.at,preview:t.preview}))}function Ut(e){let[t,n]=v({url:null,error:null});return P(()=>{if(!e)return;let r=new AbortController,o=null;return mt(e,r.signal).then(a=>{o=a,n({url:a,error:null})}).catch(a=>a.name!=="AbortError"&&n({url:null,error:a})),()=>{r.abort(),o&&URL.revokeObjectURL(o)}},[e]),t}function Nt({jobId:e,item:t,previews:n,large:r,onOpen:o}){let a=n&&t.preview?"/preview":"",{url:s,error:l}=Ut(`/api/v1/jobs/${e}/frames/${t.frame}${a}?v=${t.version}`);return d`<figure class=${r?"latest":"thumb"} data-frame=${t.frame} onClick=${()=>o(t.frame)}>
    ${s?d`<img src=${s} alt=${`frame ${t.frame}`} />`:d`<div class="placeholder">${l?"no preview":"\u2026"}</div>`}
    <figcaption>frame ${t.frame}</figcaption>
  </figure>`}function Ht({jobId:e,grid:t,previews:n}){let[r,o]=v(null),a=hn(t);if(!a.length)return d`<p class="dim">No finished frames yet.</p>`;let[s,...l]=a;return d`<div class="media">
    <${Nt} jobId=${e} item=${s} previews=${n} large=${!0} onOpen=${o} key=${`L${s.frame}-${s.version}`} />
    <div class="thumbs">
      ${l.map(p=>d`<${Nt} jobId=${e} item=${p} previews=${n} onOpen=${o} key=${`${p.frame}-${p.version}`} />`)}
    </div>
    ${r!=null&&d`<${$n} jobId=${e} frame=${r} onClose=${()=>o(null)} />`}
  </div>`}function $n({jobId:e,frame:t,onClose:n}){let{url:r,error:o}=Ut(`/api/v1/jobs/${e}/frames/${t}`);return d`<div class="overlay" id="full-frame" onClick=${n}>
    <div class="frame-view">
      ${r?d`<img src=${r} alt=${`frame ${t} full size`} />`:d`<p>${o?o.message:"loading\u2026"}</p>`}
      <p>frame ${t} · click to close</p>
    </div>
  </div>`}var Ue=100,gn=["queued","running","paused"];function vn({job:e,selected:t,clearSelection:n,onDone:r}){let[o,a]=v(String(e.priority)),[s,l]=v(!1),[p,u]=v(null),_=e.placement==="local",m=async($,y,x,b)=>{if(!(x&&!await $e(x,b))){l(!0);try{await L(`/api/v1/jobs/${e.id}/${$}`,{method:"POST",body:y}),u(null),$==="retry"&&y&&n(),r()}catch(c){u(c)}finally{l(!1)}}},i=e.progress.tasks,f=gn.includes(e.state);return d`<div class="controls">
    ${["queued","running"].includes(e.state)&&d`<button id="btn-pause" disabled=${s} onClick=${()=>m("pause")}>Pause</button>`}
    ${e.state==="paused"&&d`<button id="btn-resume" disabled=${s} onClick=${()=>m("resume")}>Resume</button>`}
    ${f&&d`<button id="btn-cancel" class="danger" disabled=${s}
      onClick=${()=>m("cancel",void 0,`Cancel job ${e.name}? Frames still rendering are stopped and their work is lost.`,"Cancel job")}>Cancel…</button>`}
    ${_&&i.failed>0&&d`<button id="btn-retry" disabled=${s} onClick=${()=>m("retry")}>Retry ${i.failed} failed</button>`}
    ${_&&t.size>0&&d`<button id="btn-requeue" disabled=${s}
      onClick=${()=>m("retry",{frames:X(t)},`Render frames ${X(t)} again? Their current output is replaced.`,"Render again")}>
      Requeue ${t.size} selected</button>`}
    ${f&&d`<span class="priority">Priority
      <input id="priority-input" type="number" min="0" max="100" value=${o} onInput=${$=>a($.target.value)} />
      <button id="btn-priority" disabled=${s||o===String(e.priority)}
        onClick=${()=>m("priority",{priority:Number(o)})}>Set</button></span>`}
    <${M} error=${p} />
  </div>`}function bn({job:e}){let t=e.profile,n=[["Owner",e.owner],["Package",e.requirement],["Frames",`${e.frames} (${e.frame_count}, chunks of ${e.chunk_size})`],["Scene",e.scene],["Submitted",`${new Date(e.created_at*1e3).toLocaleString()} (${F(e.created_at)} ago)`],["ETA",e.eta_s!=null?A(e.eta_s):"\u2014"],["Time per frame",e.seconds_per_frame!=null?`${e.seconds_per_frame.toFixed(1)} s`:"\u2014"],["Needs",[t.min_memory_mb?`${t.min_memory_mb} MiB`:null,t.min_cores>1?`${t.min_cores} cores`:null,t.gpu?"a GPU":null,(t.tags||[]).length?`tags ${t.tags.join(", ")}`:null].filter(Boolean).join(", ")||"any server"],["Attempts",`up to ${t.max_attempts}, ${t.task_timeout_s} s per task${t.max_servers?`, at most ${t.max_servers} servers`:""}`],["Settings",Object.entries(e.settings||{}).map(([r,o])=>`${r}=${JSON.stringify(o)}`).join(" ")||"\u2014"],["Output",e.storage_dir]];return d`<dl class="facts">${n.map(([r,o])=>d`<dt>${r}</dt><dd>${o}</dd>`)}</dl>`}function yn({job:e}){if(e.origin_job_id)return d`<div class="fed" id="fed-accepted">Accepted from <b>${e.origin_site}</b>, where it is job <span class="mono">${e.origin_job_id}</span>.</div>`;if(e.placement==="local")return null;let t=e.remote||{},n=e.transfer||{};return d`<div class="fed" id="fed-forwarded">
    Forwarded to <b>${e.placement}</b>${e.placement_reason?d` — ${e.placement_reason}`:""}.<br />
    Remote job <span class="mono" id="remote-job-id">${e.remote_job_id||t.job_id||"\u2014"}</span>
    · remote state ${t.state||"\u2014"} · <span id="remote-frames">${t.frames_done??0}/${e.frame_count}</span> frames done there
    ${t.last_contact_at?d` · last heard ${F(t.last_contact_at)} ago`:""}<br />
    ${e.peers_tried&&e.peers_tried.length>1?d`Offered to ${e.peers_tried.join(", ")}.<br />`:""}
    Transfer: ${K(n.bytes_sent||0)} sent, ${n.blobs_sent??0} blobs sent, ${n.blobs_skipped??0} already there
    ${t.forward_state?d` · ${t.forward_state}`:""}
  </div>`}function xn({jobId:e,page:t,filter:n,setFilter:r,offset:o,setOffset:a,onLog:s}){return d`<section>
    <h3>Tasks
      <select id="task-filter" value=${n} onChange=${l=>{r(l.target.value),a(0)}}>
        <option value="">all</option>
        ${["waiting","dispatched","running","done","failed"].map(l=>d`<option value=${l}>${l}</option>`)}
      </select>
    </h3>
    <table class="tasks">
      <thead><tr><th>#</th><th>Frames</th><th>State</th><th>Attempt</th><th>Server</th><th>Started</th><th>Took</th><th>Error</th><th></th></tr></thead>
      <tbody>
        ${t&&t.tasks.map(l=>d`<tr class="task-row" data-task=${l.index} data-state=${l.state} key=${l.id}>
          <td>${l.index}</td><td class="mono">${l.frames}</td><td><${N} state=${l.state} /></td>
          <td>${l.attempt}${l.failures?d` <span class="c-failed">(${l.failures} failed)</span>`:""}</td>
          <td>${l.server||"\u2014"}</td><td>${pe(l.started_at)}</td>
          <td>${l.started_at&&l.finished_at?A(l.finished_at-l.started_at):""}</td>
          <td class="error small">${l.error}</td>
          <td><button class="link log-btn" onClick=${()=>s(l)}>log</button></td>
        </tr>`)}
      </tbody>
    </table>
    ${t&&t.tasks_page.total>Ue&&d`<div class="pager">
      <button disabled=${o===0} onClick=${()=>a(Math.max(0,o-Ue))}>‹</button>
      ${o+1}–${o+t.tasks.length} of ${t.tasks_page.total}
      <button disabled=${t.tasks_page.next_offset==null} onClick=${()=>a(t.tasks_page.next_offset)}>›</button>
    </div>`}
  </section>`}function wn(e,t){let[n,r]=v({job:null,grid:null,tasks:null,error:null}),o=dt(async()=>{try{let[a,s,l]=await Promise.all([L(`/api/v1/jobs/${e}?tasks=0`),L(`/api/v1/jobs/${e}/grid`),L(`/api/v1/jobs/${e}/tasks?${t}`)]);r({job:a.job,grid:s,tasks:l,error:null})}catch(a){r(s=>({...s,error:a}))}},[e,t]);return H(o,a=>a.type==="change"&&(a.all||a.jobs.includes(e)),[e,t],700),[n,o]}function Dt({jobId:e,features:t}){let[n,r]=v(""),[o,a]=v(0),[s,l]=v(new Set),[p,u]=v(null),[_,m]=v(null),i=new URLSearchParams({offset:o,limit:Ue,...n?{state:n}:{}}).toString(),[{job:f,grid:$,tasks:y,error:x},b]=wn(e,i),c=(g,C)=>{let w=new Set(s);if(C&&p!=null){let O=$.frames.indexOf(p),S=$.frames.indexOf(g);for(let D=Math.min(O,S);D<=Math.max(O,S);D+=1)w.add($.frames[D])}else w.has(g)?w.delete(g):w.add(g);u(g),l(w)};if(!f)return d`<section><${M} error=${x} />${!x&&d`<p>Loading…</p>`}</section>`;let h=_&&(y&&y.tasks.find(g=>g.id===_.id)||_);return d`<section id="job-view" data-job=${f.id} data-state=${f.state}>
    <h2><a href="#/jobs">Jobs</a> › ${f.name} <${N} state=${f.state} /> <span class="dim mono">${f.id}</span></h2>
    <${M} error=${x} />
    <${vn} job=${f} selected=${s} clearSelection=${()=>l(new Set)} onDone=${b} key=${`${f.id}-${f.priority}`} />
    <div class="summary">
      <${he} job=${f} wide=${!0} />
      ${f.why_waiting&&d`<div class="why" id="why-waiting">Waiting: ${f.why_waiting}</div>`}
      ${f.error&&d`<div class="error" id="job-error">${f.error}</div>`}
      <div class="placement">Placement: ${Ne(f)} · priority ${f.priority}</div>
      <${yn} job=${f} />
      ${(f.after||[]).length>0&&d`<div class="after" id="job-after">After:
        ${f.after.map(g=>d`<span class=${g.met?"c-done":"dim"}> <a href=${`#/job/${g.job_id}`}>${g.name||g.job_id}</a>
          (${g.kind==="end"?"ends":g.kind==="frames"?"frame by frame":"done"}; ${g.state} ${g.frames_done}/${g.frame_count})${g.met?" \u2713":""}</span>`)}
      </div>`}
    </div>
    <div class="columns">
      <div class="main-col">
        <h3>Frames</h3>
        ${$&&d`<${yt} grid=${$} selected=${s} onSelect=${c} />`}
        <h3>Latest frames</h3>
        ${$&&d`<${Ht} jobId=${f.id} grid=${$} previews=${t.previews} />`}
      </div>
      <div class="side-col"><h3>Profile</h3><${bn} job=${f} /></div>
    </div>
    ${h&&d`<${Ft} jobId=${f.id} task=${h} features=${t} onClose=${()=>m(null)} key=${`${h.id}-${h.attempt}`} />`}
    <${xn} jobId=${f.id} page=${y} filter=${n} setFilter=${r} offset=${o} setOffset=${a} onLog=${m} />
  </section>`}function kn(e){let t=[];e.preference!=null&&t.push(`preference ${e.preference}`),e.cost!=null&&t.push(`cost ${e.cost}`);let n=e.policy||{};return n.max_slots&&t.push(`at most ${n.max_slots} slots`),n.max_queued_jobs&&t.push(`${n.max_queued_jobs} queued jobs`),n.packages&&t.push(`packages ${n.packages.join(", ")}`),n.hours&&t.push(`hours ${n.hours}`),t.join(" \xB7 ")}function It(e){return!e||!e.frames&&!e.core_seconds?"none":`${e.frames} frames \xB7 ${(e.core_seconds/3600).toFixed(2)} core-h`}function Sn({usage:e}){return e?d`<div class="peer-usage" data-bytes-in=${e.bytes_in} data-bytes-out=${e.bytes_out}
      data-frames-by=${e.rendered_by.frames} data-frames-for=${e.rendered_for.frames}>
    <div>${K(e.bytes_out)} out · ${K(e.bytes_in)} in</div>
    <div><span class="dim">rendered by it:</span> ${It(e.rendered_by)}</div>
    <div><span class="dim">rendered for it:</span> ${It(e.rendered_for)}</div>
  </div>`:d`<span class="dim">–</span>`}function zt(){let[e,t]=v(null),[n,r]=v(null);return H(async()=>{try{t((await L("/api/v1/peers")).peers),r(null)}catch(o){r(o)}},o=>o.type==="tick"||o.type==="change"&&o.all,[],1e3),d`<section id="peers-view">
    <${M} error=${n} />
    <table class="peers">
      <thead><tr><th>Peer</th><th>Link</th><th>Capacity</th><th>Servers</th><th>Terms</th><th>Forwarded to</th><th>Accepted from</th><th>Usage</th><th>Last error</th></tr></thead>
      <tbody>
        ${e&&e.map(o=>d`<tr class="peer-row" data-peer=${o.name} key=${o.name}>
          <td><b>${o.name}</b><div class="dim small mono">${o.url}</div></td>
          <td><${N} state=${o.state} />${o.last_seen?d`<div class="dim small">heard ${F(o.last_seen)} ago</div>`:""}</td>
          <td>${o.capacity?d`${o.capacity.free_slots} free slots on ${o.capacity.servers} servers · queue ${o.capacity.queue}`:d`<span class="dim">no advert yet</span>`}${o.refused?d`<div class="error small refusal">${o.refused.note}, ${F(o.refused.at)} ago; no free slot until its next advert</div>`:""}</td>
          <td class="small">${(o.servers||[]).map(a=>d`<div>${a.name} <span class="dim">${a.status} ${a.slots-(a.advertised_free_slots??a.free_slots)}/${a.slots} · ${Object.keys(a.packages).join(", ")}</span></div>`)}</td>
          <td class="small">${kn(o)}</td>
          <td><a href=${`#/jobs?placement=${o.name}`}>${o.jobs_forwarded??0} jobs</a>${o.forward===!1?d`<div class="dim small">not allowed</div>`:""}</td>
          <td>${o.jobs_accepted??0} jobs${o.accept===!1?d`<div class="dim small">not allowed</div>`:""}</td>
          <td class="small"><${Sn} usage=${o.usage} /></td>
          <td class="error small">${o.last_error||""}</td>
        </tr>`)}
      </tbody>
    </table>
    ${e&&e.length===0&&d`<p class="empty">This site has no peers configured ([[peers]] in its config).</p>`}
  </section>`}function Bt(){let[e,t]=v(null),[n,r]=v(null),o=async()=>{try{t((await L("/api/v1/servers")).servers),r(null)}catch(s){r(s)}};H(o,s=>s.type==="tick"||s.type==="change"&&s.servers,[],1e3);let a=async(s,l)=>{try{if(l==="forget"){if(!await $e(`Forget render server ${s.name}? It registers again if it reconnects.`,"Forget"))return;await L(`/api/v1/servers/${s.id}`,{method:"DELETE"})}else await L(`/api/v1/servers/${s.id}/${l}`,{method:"POST"});await o()}catch(p){r(p)}};return d`<section id="servers-view">
    <${M} error=${n} />
    <table class="servers">
      <thead><tr><th>Name</th><th>Status</th><th>Rendering</th><th>Slots</th><th>Last hour</th><th>Hardware</th><th>Packages</th><th>Last error</th><th></th></tr></thead>
      <tbody>
        ${e&&e.map(s=>d`<tr class="server-row" data-server=${s.name} key=${s.id}>
          <td><b>${s.name}</b><div class="dim small">${s.host}</div></td>
          <td><${N} state=${s.status} />${s.last_heartbeat?d`<div class="dim small">seen ${F(s.last_heartbeat)} ago</div>`:""}</td>
          <td>${(s.current||[]).map(l=>d`<div><a href=${`#/job/${l.job}`} class="mono">${l.job}</a> <span class="dim">frames ${l.frames}</span></div>`)}</td>
          <td>${s.slots-s.free_slots}/${s.slots} busy</td>
          <td><div class="util"><span style=${{width:Re(s.utilisation)}}></span></div>${Re(s.utilisation)}</td>
          <td class="small">${s.cores} cores · ${Math.round(s.memory_mb/1024)} GiB${s.gpus.length?` \xB7 ${s.gpus.join(", ")}`:""}<div class="dim">${s.os} ${s.cpu_model}</div></td>
          <td class="small mono">${Object.entries(s.packages).map(([l,p])=>`${l} ${p}`).join(", ")}${s.tags.length?d`<div class="dim">tags ${s.tags.join(", ")}</div>`:""}</td>
          <td class="error small">${s.last_error?d`${s.last_error.error}<div class="dim">${F(s.last_error.at)} ago</div>`:""}</td>
          <td class="actions">
            ${s.status==="disabled"?d`<button class="btn-enable" onClick=${()=>a(s,"enable")}>Enable</button>`:d`<button class="btn-disable" onClick=${()=>a(s,"disable")}>Disable</button>`}
            ${s.status==="offline"&&d`<button class="danger" onClick=${()=>a(s,"forget")}>Forget…</button>`}
          </td>
        </tr>`)}
      </tbody>
    </table>
    ${e&&e.length===0&&d`<p class="empty">No render server has connected yet: start one with <code>spillway render-server --agent URL</code>.</p>`}
  </section>`}function Wt(e){let[t,n=""]=e.replace(/^#/,"").split("?"),r=t.split("/").filter(Boolean),o=Object.fromEntries(new URLSearchParams(n));return r[0]==="job"&&r[1]?{view:"job",id:decodeURIComponent(r[1]),params:o}:r[0]==="servers"||r[0]==="peers"?{view:r[0],params:o}:{view:"jobs",params:o}}function Cn(){let[e,t]=v(Wt(location.hash));return P(()=>{let n=()=>t(Wt(location.hash));return window.addEventListener("hashchange",n),()=>window.removeEventListener("hashchange",n)},[]),e}function qt(e){let t=Object.keys(e&&e.paths||{});return{logs:t.some(n=>n.startsWith("/api/v1/jobs/")&&n.endsWith("/log")),previews:t.some(n=>n.startsWith("/api/v1/jobs/")&&n.endsWith("/preview"))}}function En({site:e,onLogin:t}){let[n,r]=v(""),[o,a]=v(null);return d`<form class="login" id="login" onSubmit=${async l=>{l.preventDefault(),W(n.trim());try{await L("/api/v1/jobs?limit=1"),t()}catch(p){W(""),a(p.status===401?new Error("That token was not accepted; check it and try again."):p)}}}>
    <h2>Spillway site ${e}</h2>
    <p>This agent needs a client token (one of <code>[auth] client_tokens</code> in its config).
      It is kept for this browser tab only.</p>
    <input id="token-input" type="password" autocomplete="current-password" placeholder="Token" value=${n}
      onInput=${l=>r(l.target.value)} autofocus />
    <button id="token-submit" type="submit">Sign in</button>
    <${M} error=${o} />
  </form>`}function Tn({site:e,route:t,authed:n,onSignOut:r}){let o=Lt(),a=(s,l)=>d`<a href=${`#/${s}`} id=${`nav-${s}`} class=${t.view===s||s==="jobs"&&t.view==="job"?"active":""}>${l}</a>`;return d`<nav>
    <span class="site">Spillway · <b id="site-name">${e}</b></span>
    ${a("jobs","Jobs")}${a("servers","Render servers")}${a("peers","Peers")}
    <span class="spacer"></span>
    <span id="live-status" class=${o?"live on":"live off"}>${o?"\u25CF live":"\u25CB reconnecting"}</span>
    ${n&&Me()&&d`<button class="link" id="sign-out" onClick=${r}>sign out</button>`}
  </nav>`}function Pn(){let e=Cn(),[t,n]=v(null),[r,o]=v({logs:!1,previews:!1}),[a,s]=v(!1),[l,p]=v([]),[u,_]=v(null);if(P(()=>(L("/api/v1/health").then(f=>{n(f),s(!f.client_auth||!!Me())}).catch(_),L("/api/v1/openapi.json").then(f=>o(qt(f))).catch(()=>o(qt(null))),ft(()=>{W(""),s(!1)})),[]),P(()=>{if(a)return Tt(()=>{W(""),s(!1)}),L("/api/v1/peers").then(f=>p(f.peers.map($=>$.name))).catch(()=>p([])),Pt},[a]),P(()=>{t&&(document.title=`Spillway \xB7 ${t.site}`)},[t]),u)return d`<main><${M} error=${u} /></main>`;if(!t)return d`<main><p>Connecting…</p></main>`;if(!a)return d`<main><${En} site=${t.site} onLogin=${()=>s(!0)} /></main>`;let m=()=>{W(""),s(!1)},i;return e.view==="job"?i=d`<${Dt} jobId=${e.id} features=${r} key=${e.id} />`:e.view==="servers"?i=d`<${Bt} />`:e.view==="peers"?i=d`<${zt} />`:i=d`<${jt} peers=${l} initial=${e.params} key=${JSON.stringify(e.params)} />`,d`<${Tn} site=${t.site} route=${e} authed=${a} onSignOut=${m} />
    <main>${i}</main>
    <${Ot} />`}et(d`<${Pn} />`,document.getElementById("app"));
